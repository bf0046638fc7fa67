"""The alignment model as a library: strings, images and waveforms in, L2-normalised embeddings out.

    model = AlignModel.from_pretrained("runs/clip/final")
    t = encode_text(model, ["the digit seven", "grinning face"])      # (2, D)
    i = encode_image(model, images)                                    # (N, 3, H, W) in [-1, 1] -> (N, D)
    s = similarity(i, t)                                               # (N, 2) cosine similarities

``encode_text`` is also the text encoder other models can condition on: one vector per text, or with
``text_features`` the text tower's state at every token (for cross-attention).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from omnitok.align.model import AlignModel
from omnitok.align.text_encoder import pad_ids

__all__ = ["clip_score", "encode_audio", "encode_image", "encode_text", "similarity", "text_features"]


def _device(model: AlignModel) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def encode_text(model: AlignModel, texts: str | Sequence[str], batch_size: int = 256) -> Tensor:
    """A string or a list of strings -> (N, embed_dim) float32, unit length."""
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer (load it with AlignModel.from_pretrained)")
    texts = [texts] if isinstance(texts, str) else list(texts)
    out = []
    for i in range(0, len(texts), batch_size):
        ids, lengths = pad_ids(model.tokenizer.encode(texts[i:i + batch_size]), model.config.text.max_len)
        out.append(model.embed_text(ids.to(_device(model)), lengths.to(_device(model))).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, model.config.embed_dim)


@torch.no_grad()
def text_features(model: AlignModel, texts: str | Sequence[str]) -> tuple[Tensor, Tensor]:
    """Strings -> (per-token states (N, L, text dim), valid bool (N, L)), L the longest text in BPE ids."""
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer (load it with AlignModel.from_pretrained)")
    texts = [texts] if isinstance(texts, str) else list(texts)
    ids, lengths = pad_ids(model.tokenizer.encode(texts), model.config.text.max_len)
    feats, valid = model.text.features(ids.to(_device(model)), lengths.to(_device(model)))
    return feats.float().cpu(), valid.cpu()


@torch.no_grad()
def encode_image(model: AlignModel, images: Tensor, batch_size: int = 256) -> Tensor:
    """Images (N, 3, H, W) or (N, 1, H, W) float in [-1, 1] (the ``omnitok.data`` layout) -> (N, embed_dim).

    Images of another size are resized (bilinear, antialiased) to the tower's ``image_size``.
    """
    if model.config.image is None:
        raise ValueError("this align model has no image tower")
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 3, H, W) or (N, 1, H, W), got {tuple(images.shape)}")
    side = model.config.image.image_size
    out = []
    for i in range(0, images.shape[0], batch_size):
        x = images[i:i + batch_size].float().to(_device(model))
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (side, side):
            x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        out.append(model.embed_image(x).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, model.config.embed_dim)


@torch.no_grad()
def encode_audio(model: AlignModel, audio: Sequence[Tensor | np.ndarray], sample_rate: int,
                 batch_size: int = 64) -> Tensor:
    """Mono clips (each (T,) or (1, T), float in [-1, 1]) at ``sample_rate`` -> (N, embed_dim).

    ``sample_rate`` must be the tower's (16 kHz by default): resample first (``omnitok.io.audio.resample``).
    Clips are batched in order of length, so little padding is computed.
    """
    if model.config.audio is None:
        raise ValueError("this align model has no audio tower")
    if sample_rate != model.config.audio.sample_rate:
        raise ValueError(f"audio at {sample_rate} Hz; this model reads {model.config.audio.sample_rate} Hz "
                         "(resample with omnitok.io.audio.resample)")
    clips = [torch.as_tensor(np.asarray(c), dtype=torch.float32).reshape(-1) for c in audio]
    limit = model.audio.max_samples
    clips = [c[:limit] for c in clips]
    order = sorted(range(len(clips)), key=lambda i: clips[i].shape[0])
    out = torch.zeros(len(clips), model.config.embed_dim)
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        lengths = torch.tensor([max(clips[i].shape[0], 1) for i in idx])
        wave = torch.zeros(len(idx), int(lengths.max()))
        for row, i in enumerate(idx):
            wave[row, : clips[i].shape[0]] = clips[i]
        dev = _device(model)
        out[idx] = model.embed_audio(wave.to(dev), lengths.to(dev)).float().cpu()
    return out


def similarity(a: Tensor, b: Tensor) -> Tensor:
    """(N, D), (M, D) embeddings -> (N, M) cosine similarities (the inputs are normalised again, so any
    vectors work)."""
    return F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T


def clip_score(a: Tensor, b: Tensor, weight: float = 2.5) -> Tensor:
    """CLIPScore of matched rows (Hessel et al. 2021, arXiv 2104.08718, eq. 1): ``w * max(cos(a_i, b_i), 0)``,
    (N,) for (N, D) pairs."""
    if a.shape != b.shape:
        raise ValueError(f"clip_score pairs rows: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
    return weight * (F.normalize(a.float(), dim=-1) * F.normalize(b.float(), dim=-1)).sum(-1).clamp_min(0.0)
