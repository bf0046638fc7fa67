"""omnitok: every modality as a sequence of tokens, learned by one next-token model.

The flat public API::

    from omnitok import FSQ, ImageCodec, Vocabulary, Transformer, generate
"""

from omnitok.align import AlignModel, encode_audio, encode_image, encode_text, similarity
from omnitok.codecs import AudioCodec, CheckpointError, Codec, ImageCodec, TextCodec, VideoCodec, load_codec
from omnitok.diffusion import (
    DDIMScheduler,
    DDPMScheduler,
    DiffusionModel,
    FlowEulerScheduler,
    SchedulerConfig,
    make_scheduler,
)
from omnitok.generation import generate
from omnitok.model import ModelConfig, StaticKVCache, Transformer, TransfusionModel
from omnitok.quantizers import (
    BSQ,
    FSQ,
    LFQ,
    AdditiveVQ,
    GumbelVQ,
    ProductVQ,
    Quantizer,
    QuantizerOutput,
    ResidualVQ,
    VectorQuantizer,
)
from omnitok.vocab import Audio, Document, GrammarState, Image, Text, Video, Vocabulary, VocabularyError

__version__ = "0.1.0"

__all__ = [
    "BSQ",
    "FSQ",
    "LFQ",
    "AdditiveVQ",
    "AlignModel",
    "Audio",
    "AudioCodec",
    "CheckpointError",
    "Codec",
    "DDIMScheduler",
    "DDPMScheduler",
    "DiffusionModel",
    "Document",
    "FlowEulerScheduler",
    "GrammarState",
    "GumbelVQ",
    "Image",
    "ImageCodec",
    "ModelConfig",
    "ProductVQ",
    "Quantizer",
    "QuantizerOutput",
    "ResidualVQ",
    "SchedulerConfig",
    "StaticKVCache",
    "Text",
    "TextCodec",
    "Transformer",
    "TransfusionModel",
    "Video",
    "VideoCodec",
    "VectorQuantizer",
    "Vocabulary",
    "VocabularyError",
    "__version__",
    "encode_audio",
    "encode_image",
    "encode_text",
    "generate",
    "load_codec",
    "make_scheduler",
    "similarity",
]
