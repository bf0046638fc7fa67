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

from omnitok.codecs.base import CodecOutput, QuantizedCodec, codec_quantizer
from omnitok.codecs.image import check_code_batch, check_float_batch, conv_config, spatial_grid
from omnitok.nn.conv import ConvDecoder2d, ConvEncoder2d, group_norm, per_frame
from omnitok.quantizers.base import Quantizer

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


class VideoCodec(QuantizedCodec):
    """Per-frame spatial encoder + causal temporal compression (stride 1, 2 or 4) + quantizer + mirror."""

    modality = "video"

    def __init__(
        self,
        in_channels: int = 3,
        channels: int = 64,
        channel_mult: list[int] | tuple[int, ...] = (1, 2, 2),
        num_res_blocks: int = 1,
        attention: bool = False,
        z_channels: int = 64,
        temporal_stride: int = 2,
        quantizer: Quantizer | str = "vq",
        quantizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """``quantizer``: a :class:`Quantizer` built by ``build_quantizer`` (codecs/builder.py passes one), or its
        name with ``quantizer_kwargs`` (the plain form config.json records)."""
        super().__init__()
        if temporal_stride not in (1, 2, 4):
            raise ValueError(f"VideoCodec: temporal_stride must be 1, 2 or 4, got {temporal_stride}")
        conv = conv_config(in_channels, channels, channel_mult, num_res_blocks, attention, z_channels, "VideoCodec")
        quantizer, qname, quantizer_kwargs = codec_quantizer(quantizer, quantizer_kwargs, "VideoCodec")
        self.config = {**conv, "temporal_stride": temporal_stride, "quantizer": qname,
                       "quantizer_kwargs": quantizer_kwargs}
        self.in_channels = in_channels
        self.factor = 2 ** (len(channel_mult) - 1)
        self.temporal_stride = temporal_stride
        self.quantizer: Quantizer = quantizer
        dim = self.quantizer.dim
        levels = int(math.log2(temporal_stride))
        self.encoder = ConvEncoder2d(in_channels, z_channels, channels, channel_mult, num_res_blocks, attention)
        self.temporal_down = nn.ModuleList([CausalTemporalDown(z_channels) for _ in range(levels)])
        self.quant_conv = nn.Conv2d(z_channels, dim, 1)
        self.post_quant_conv = nn.Conv2d(dim, z_channels, 1)
        self.temporal_up = nn.ModuleList([CausalTemporalUp(z_channels) for _ in range(levels)])
        self.decoder = ConvDecoder2d(z_channels, in_channels, channels, channel_mult, num_res_blocks, attention)
        self.weights_sha256: str | None = None

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

    def _check_video(self, x: Tensor) -> None:
        check_float_batch(x, 5, self.in_channels, "VideoCodec", "(B, C, T, H, W)")
        self.code_grid(tuple(x.shape[1:]))

    # ----- encoder / decoder halves ------------------------------------------------------------
    def encode_latents(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> latents (B, D, 1 + (T-1)/s, H/f, W/f)."""
        feats = _after_first_frame(self.temporal_down, per_frame(self.encoder, x))  # (B, Z, T', h, w)
        return per_frame(self.quant_conv, feats)

    def decode_latents(self, lat: Tensor) -> Tensor:
        """(B, D, T', h, w) -> video (B, C, 1 + (T'-1)*s, h*f, w*f)."""
        feats = _after_first_frame(self.temporal_up, per_frame(self.post_quant_conv, lat))  # (B, Z, T, h, w)
        return per_frame(self.decoder, feats)

    # ----- codec interface ---------------------------------------------------------------------
    def forward(self, x: Tensor) -> CodecOutput:
        self._check_video(x)
        q = self.quantizer.forward_channel_first(self.encode_latents(x))
        return CodecOutput(self.decode_latents(q.latents), q.codes, q.loss, q.metrics)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) in [-1, 1] -> codes (B, 1 + (T-1)/s, H/f, W/f, num_codebooks) int64."""
        self._check_video(x)
        return self.quantizer.forward_channel_first(self.encode_latents(x)).codes.long()

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """codes (B, T', h, w, num_codebooks) -> video (B, C, 1 + (T'-1)*s, h*f, w*f)."""
        check_code_batch(codes, 5, "VideoCodec", "(B, T', h, w, num_codebooks)")
        latents = self.quantizer.codes_to_latents(codes)  # (B, T', h, w, D)
        return self.decode_latents(latents.movedim(-1, 1))
