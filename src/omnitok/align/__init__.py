"""Contrastive alignment: CLIP (images <-> text) and CLAP (speech <-> text) over the project's BPE ids.

Towers (``text_encoder``, ``image_encoder``, ``audio_encoder``), the losses as plain functions of two embedding
batches (``clip_loss``, ``siglip_loss``; embeddings gathered across ranks), the model and its folder format
(``model``), and the library functions (``api``). Trained by ``omnitok train clip``, judged by ``omnitok eval clip``.
"""

from omnitok.align.api import clip_score, encode_audio, encode_image, encode_text, similarity, text_features
from omnitok.align.audio_encoder import AudioEncoder
from omnitok.align.clip_loss import clip_loss
from omnitok.align.image_encoder import ConvImageEncoder
from omnitok.align.model import AlignConfig, AlignModel, AudioTowerConfig, ImageTowerConfig, TextTowerConfig
from omnitok.align.siglip_loss import siglip_loss
from omnitok.align.text_encoder import TextEncoder

__all__ = [
    "AlignConfig",
    "AlignModel",
    "AudioEncoder",
    "AudioTowerConfig",
    "ConvImageEncoder",
    "ImageTowerConfig",
    "TextEncoder",
    "TextTowerConfig",
    "clip_loss",
    "clip_score",
    "encode_audio",
    "encode_image",
    "encode_text",
    "siglip_loss",
    "similarity",
    "text_features",
]
