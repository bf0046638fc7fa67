"""Tiny deterministic codecs for tests and smoke runs (no training): random projections + nearest code.

They implement the full :class:`~omnitok.codecs.base.Codec` interface with a few hundred parameters, so the
vocabulary, token shards and the LM can be tested end to end before (or without) the real codecs
(:func:`debug_codecs`; a whole vocabulary over them: :func:`omnitok.data.debug.debug_vocabulary`).
Quality is irrelevant; determinism (fixed ``seed``) is what matters.
"""

from __future__ import annotations

import torch
from torch import Tensor

from omnitok.codecs.base import Codec
from omnitok.codecs.text import TextCodec

__all__ = [
    "DEBUG_CORPUS",
    "DebugAudioCodec",
    "DebugImageCodec",
    "DebugVideoCodec",
    "debug_codecs",
    "debug_text_codec",
]


class _ProjectionQuantizer(torch.nn.Module):
    """x (..., in_dim) -> random projection (..., dim) -> residual nearest-code over n_q codebooks."""

    def __init__(self, in_dim: int, dim: int, codebook_size: int, num_codebooks: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("proj", torch.randn(in_dim, dim, generator=g) / in_dim**0.5)
        scales = 0.5 ** torch.arange(num_codebooks, dtype=torch.float32)
        books = torch.randn(num_codebooks, codebook_size, dim, generator=g) * scales[:, None, None]
        self.register_buffer("codebooks", books)

    def encode(self, x: Tensor) -> Tensor:
        z = x @ self.proj  # (..., dim)
        codes = []
        for book in self.codebooks:  # residual nearest code per level
            idx = torch.cdist(z.reshape(-1, z.shape[-1]), book).argmin(-1).reshape(z.shape[:-1])
            codes.append(idx)
            z = z - book[idx]
        return torch.stack(codes, -1)  # (..., n_q)

    def decode(self, codes: Tensor) -> Tensor:
        z = sum(self.codebooks[k][codes[..., k]] for k in range(codes.shape[-1]))
        return z @ torch.linalg.pinv(self.proj)  # (..., in_dim)


class _DebugCodec(Codec):
    """What the debug codecs share: sizes from ``config``, a :class:`_ProjectionQuantizer` ``q``."""

    config: dict

    @property
    def codebook_size(self) -> int:
        return self.config["codebook_size"]

    @property
    def num_codebooks(self) -> int:
        return self.config["num_codebooks"]


class DebugImageCodec(_DebugCodec):
    """(B, 3, H, W) -> (B, H/patch, W/patch, n_q)."""

    modality = "image"

    def __init__(
        self, patch: int = 4, codebook_size: int = 64, num_codebooks: int = 1, dim: int = 8, seed: int = 0
    ) -> None:
        super().__init__()
        self.config = dict(
            patch=patch, codebook_size=codebook_size, num_codebooks=num_codebooks, dim=dim, seed=seed
        )
        self.patch = patch
        self.q = _ProjectionQuantizer(3 * patch * patch, dim, codebook_size, num_codebooks, seed)

    def code_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (input_shape[-2] // self.patch, input_shape[-1] // self.patch)

    def _patches(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        p = self.patch
        x = x[:, :, : H // p * p, : W // p * p]
        x = x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)  # (B, h, w, C, p, p)
        return x.reshape(B, H // p, W // p, C * p * p)

    def encode(self, x: Tensor) -> Tensor:
        return self.q.encode(self._patches(x.float()))  # (B, h, w, n_q)

    def decode(self, codes: Tensor) -> Tensor:
        B, h, w, _ = codes.shape
        p = self.patch
        x = self.q.decode(codes).reshape(B, h, w, 3, p, p).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(B, 3, h * p, w * p).clamp(-1, 1)


class DebugVideoCodec(_DebugCodec):
    """(B, 3, F, H, W) -> (B, F/frames_per_code, H/patch, W/patch, n_q): the layout of ``VideoCodec``, in and out."""

    modality = "video"

    def __init__(
        self,
        patch: int = 4,
        frames_per_code: int = 2,
        codebook_size: int = 64,
        num_codebooks: int = 1,
        dim: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.config = dict(
            patch=patch,
            frames_per_code=frames_per_code,
            codebook_size=codebook_size,
            num_codebooks=num_codebooks,
            dim=dim,
            seed=seed,
        )
        self.patch, self.tp = patch, frames_per_code
        self.q = _ProjectionQuantizer(
            3 * patch * patch * frames_per_code, dim, codebook_size, num_codebooks, seed
        )

    def code_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:  # (C, F, H, W)
        return (input_shape[1] // self.tp, input_shape[-2] // self.patch, input_shape[-1] // self.patch)

    def encode(self, x: Tensor) -> Tensor:  # (B, 3, F, H, W) -> (B, t, h, w, n_q)
        x = x.transpose(1, 2)  # (B, F, 3, H, W)
        B, F, C, H, W = x.shape
        p, tp = self.patch, self.tp
        x = x[:, : F // tp * tp, :, : H // p * p, : W // p * p].float()
        x = x.reshape(B, F // tp, tp, C, H // p, p, W // p, p).permute(0, 1, 4, 6, 2, 3, 5, 7)
        return self.q.encode(x.reshape(B, F // tp, H // p, W // p, -1))  # (B, t, h, w, n_q)

    def decode(self, codes: Tensor) -> Tensor:
        B, t, h, w, _ = codes.shape
        p, tp = self.patch, self.tp
        x = self.q.decode(codes).reshape(B, t, h, w, tp, 3, p, p).permute(0, 1, 4, 5, 2, 6, 3, 7)
        return x.reshape(B, t * tp, 3, h * p, w * p).clamp(-1, 1).transpose(1, 2)  # (B, 3, F, H, W)


class DebugAudioCodec(_DebugCodec):
    """(B, 1, N) -> (B, N/hop, n_q): residual codes of frames of ``hop`` samples."""

    modality = "audio"

    def __init__(
        self, hop: int = 160, codebook_size: int = 32, num_codebooks: int = 4, dim: int = 8, seed: int = 0
    ) -> None:
        super().__init__()
        self.config = dict(
            hop=hop, codebook_size=codebook_size, num_codebooks=num_codebooks, dim=dim, seed=seed
        )
        self.hop = hop
        self.q = _ProjectionQuantizer(hop, dim, codebook_size, num_codebooks, seed)

    def code_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (input_shape[-1] // self.hop,)

    def encode(self, x: Tensor) -> Tensor:
        B = x.shape[0]
        N = x.shape[-1] // self.hop * self.hop
        frames = x.float().reshape(B, -1)[:, :N].reshape(B, -1, self.hop)  # (B, T, hop)
        return self.q.encode(frames)  # (B, T, n_q)

    def decode(self, codes: Tensor) -> Tensor:
        B, T, _ = codes.shape
        return self.q.decode(codes).reshape(B, 1, T * self.hop).clamp(-1, 1)


DEBUG_CORPUS: tuple[str, ...] = (
    "the quick brown fox jumps over the lazy dog",
    "a 3d emoji of a grinning face",
    "handwritten digit seven",
    "spoken digit three, voice slt",
    "a moving digit four on a black background",
    "zero one two three four five six seven eight nine",
)


def debug_text_codec(vocab_size: int = 320) -> TextCodec:
    """A byte-level BPE trained in milliseconds on :data:`DEBUG_CORPUS` (needs ``tokenizers``)."""
    return TextCodec.train_bpe(list(DEBUG_CORPUS) * 10, vocab_size=vocab_size)


def debug_codecs(image_levels: int = 1, audio_levels: int = 4) -> dict[str, Codec]:
    """One debug codec per modality: text BPE, 4x4-patch image and video (2 frames a code), 80-sample audio frames."""
    return {
        "text": debug_text_codec(),
        "image": DebugImageCodec(patch=4, codebook_size=64, num_codebooks=image_levels),
        "audio": DebugAudioCodec(hop=80, codebook_size=32, num_codebooks=audio_levels),
        "video": DebugVideoCodec(patch=4, frames_per_code=2, codebook_size=48),
    }
