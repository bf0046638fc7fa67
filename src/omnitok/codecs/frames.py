"""FrameCodec: an image codec applied to every frame of a video, no temporal compression.

Videos are float tensors (B, C, T, H, W) in [-1, 1], as every video codec takes them; each frame goes through
the wrapped :class:`ImageCodec` on its own. Codes: (B, T, H/f, W/f, num_codebooks) int64, frame by frame, so a
clip costs T times an image. The baseline the temporal codecs (``video.py``, ``global_motion.py``) are measured
against: what a video costs when nothing is shared between frames.

    codec = FrameCodec.from_image_codec(load_codec("runs/codec/quickstart-image/codec"))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from omnitok.codecs.image import CodecOutput, ImageBasedCodec, ImageCodec, check_code_batch, check_float_batch

__all__ = ["FrameCodec"]


class FrameCodec(ImageBasedCodec):
    """Every frame through one image codec (its constructor arguments in ``image``)."""

    modality = "video"

    def __init__(self, image: dict[str, Any]) -> None:
        super().__init__()
        self.image = ImageCodec(**image)
        self.config = {"image": dict(self.image.config)}
        self.in_channels = self.image.in_channels
        self.factor = self.image.factor
        self.weights_sha256: str | None = None

    def code_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(C, T, H, W) or (T, H, W) -> (T, H/f, W/f)."""
        if len(input_shape) not in (3, 4):
            raise ValueError(f"FrameCodec.code_grid: expected (C, T, H, W) or (T, H, W), got {tuple(input_shape)}")
        t = input_shape[-3]
        if t < 1:
            raise ValueError(f"FrameCodec: a clip needs at least one frame, got {t}")
        return (t, *self.image.code_grid(tuple(input_shape[-2:])))

    def _frames(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> (B*T, C, H, W)."""
        check_float_batch(x, 5, self.in_channels, "FrameCodec", "(B, C, T, H, W)")
        self.code_grid(tuple(x.shape[1:]))
        b, c, t, h, w = x.shape
        return x.transpose(1, 2).reshape(b * t, c, h, w)

    def forward(self, x: Tensor) -> CodecOutput:
        b, _, t = x.shape[:3]
        out = self.image(self._frames(x))
        recon = out.recon.reshape(b, t, *out.recon.shape[1:]).transpose(1, 2)  # (B, C, T, H, W)
        return CodecOutput(recon, out.codes.reshape(b, t, *out.codes.shape[1:]), out.loss, out.metrics)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) in [-1, 1] -> codes (B, T, H/f, W/f, num_codebooks) int64."""
        b, _, t = x.shape[:3]
        codes = self.image.encode(self._frames(x))  # (B*T, h, w, n_q)
        return codes.reshape(b, t, *codes.shape[1:])

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """codes (B, T, h, w, num_codebooks) -> video (B, C, T, h*f, w*f)."""
        check_code_batch(codes, 5, "FrameCodec", "(B, T, h, w, num_codebooks)")
        b, t = codes.shape[:2]
        frames = self.image.decode(codes.reshape(b * t, *codes.shape[2:]))  # (B*T, C, H, W)
        return frames.reshape(b, t, *frames.shape[1:]).transpose(1, 2)
