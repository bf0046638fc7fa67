"""VideoCodec: per-frame conv encoder, causal strided temporal convolutions, any quantizer, mirror decoder.

Videos are float tensors (B, C, T, H, W) in [-1, 1] with T = 1 + k * temporal_stride frames. The
first frame is encoded alone (no temporal mixing), so an image is a one-frame video and its codes
are those of a one-frame clip; the remaining k * s frames are compressed by log2(s) causal stride-2
convolutions over time (each output sees only its own frames and the one before; padding replicates
the earliest frame), as in MAGVIT-v2's causal tokenizer (Yu et al., arXiv 2310.05737).
Codes: (B, 1 + k, H/f, W/f, num_codebooks) int64.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnitok.codecs.image import ConvCodec, check_float_batch, spatial_grid
from omnitok.nn.conv import group_norm, per_frame

__all__ = ["CausalTemporalDown", "CausalTemporalUp", "VideoCodec"]


def _causal_pad(x: Tensor, frames: int) -> Tensor:
    """Pad (B, C, T, H, W) in time at the front by replicating frame 0 ``frames`` times."""
    if frames == 0:
        return x
    return torch.cat([x[:, :, :1].expand(-1, -1, frames, -1, -1), x], dim=2)


class CausalTemporalDown(nn.Module):
    """Halve T with a causal (3, 3, 3) conv of time stride 2: output t sees input frames 2t-1, 2t, 2t+1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, (3, 3, 3), stride=(2, 1, 1), padding=(0, 1, 1))
        self.norm = group_norm(channels)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T, H, W), T even -> (B, C, T/2, H, W)
        return F.silu(per_frame(self.norm, self.conv(_causal_pad(x, 1))))


class CausalTemporalUp(nn.Module):
    """Double T: causal (3, 3, 3) conv to 2C channels, then the two halves become consecutive frames."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(channels, 2 * channels, (3, 3, 3), padding=(0, 1, 1))
        self.norm = group_norm(channels)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T, H, W) -> (B, C, 2T, H, W)
        b, c, t, h, w = x.shape
        y = self.conv(_causal_pad(x, 2)).reshape(b, 2, c, t, h, w)
        y = y.permute(0, 2, 3, 1, 4, 5).reshape(b, c, 2 * t, h, w)  # frame 2t, 2t+1 from step t
        return F.silu(per_frame(self.norm, y))


def _after_first_frame(layers: nn.ModuleList, feats: Tensor) -> Tensor:
    """Run the temporal ``layers`` over every frame but the first, which stays alone: (B, Z, T, h, w) in."""
    first, rest = feats[:, :, :1], feats[:, :, 1:]
    if not rest.shape[2]:
        return first
    for layer in layers:
        rest = layer(rest)
    return torch.cat([first, rest], dim=2)


class VideoCodec(ConvCodec):
    """Per-frame spatial encoder + causal temporal compression (stride 1, 2 or 4) + quantizer + mirror.

    Arguments: ``temporal_stride`` and, by keyword, those of :class:`~omnitok.codecs.image.ConvCodec` (the image
    codec's: in_channels, channels, channel_mult, num_res_blocks, attention, z_channels, quantizer,
    quantizer_kwargs); ``temporal_down`` / ``temporal_up`` sit between the spatial layers."""

    modality = "video"
    code_layout = "(B, T', h, w, num_codebooks)"

    def __init__(self, *, temporal_stride: int = 2, **conv: Any) -> None:
        if temporal_stride not in (1, 2, 4):
            raise ValueError(f"VideoCodec: temporal_stride must be 1, 2 or 4, got {temporal_stride}")
        self.temporal_stride = temporal_stride  # read by the builders below, during ConvCodec.__init__
        super().__init__(**conv)

    def own_config(self) -> dict[str, Any]:
        return {"temporal_stride": self.temporal_stride}

    def build_after_encoder(self, z_channels: int) -> None:
        levels = int(math.log2(self.temporal_stride))
        self.temporal_down = nn.ModuleList([CausalTemporalDown(z_channels) for _ in range(levels)])

    def build_before_decoder(self, z_channels: int) -> None:
        levels = int(math.log2(self.temporal_stride))
        self.temporal_up = nn.ModuleList([CausalTemporalUp(z_channels) for _ in range(levels)])

    def code_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(C, T, H, W) or (T, H, W) -> (1 + (T - 1) / s, H / f, W / f)."""
        if len(input_shape) not in (3, 4):
            raise ValueError(f"VideoCodec.code_grid: expected (C, T, H, W) or (T, H, W), got {tuple(input_shape)}")
        t, h, w = input_shape[-3:]
        f, s = self.factor, self.temporal_stride
        if t < 1 or (t - 1) % s:
            raise ValueError(
                f"VideoCodec: {t} frames; expected T = 1 + k * {s} (temporal_stride={s}), e.g. {1 + max(0, (t - 1) // s) * s}"
            )
        return (1 + (t - 1) // s, *spatial_grid(h, w, f, "VideoCodec", "frame"))

    def check_input(self, x: Tensor) -> None:
        check_float_batch(x, 5, self.in_channels, "VideoCodec", "(B, C, T, H, W)")
        self.code_grid(tuple(x.shape[1:]))

    # ----- encoder / decoder halves ------------------------------------------------------------
    def encode_latents(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> latents (B, D, 1 + (T-1)/s, H/f, W/f)."""
        feats = _after_first_frame(self.temporal_down, per_frame(self.encoder, x))  # (B, Z, T', h, w)
        return per_frame(self.quant_conv, feats)

    def decode_latents(self, latents: Tensor) -> Tensor:
        """(B, D, T', h, w) -> video (B, C, 1 + (T'-1)*s, h*f, w*f)."""
        feats = _after_first_frame(self.temporal_up, per_frame(self.post_quant_conv, latents))  # (B, Z, T, h, w)
        return per_frame(self.decoder, feats)
