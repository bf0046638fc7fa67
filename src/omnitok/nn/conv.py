"""Convolutional building blocks for image / video codecs (VQGAN family).

ResBlock (GroupNorm + SiLU + 3x3 conv, twice, with a 1x1 skip when channels change), strided
downsampling, nearest-neighbour upsampling, single-head self-attention over a conv feature map, and the
encoder / decoder stacks built from them (Esser et al., "Taming Transformers", arXiv 2012.09841).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ConvAttention2d",
    "ConvDecoder2d",
    "ConvEncoder2d",
    "Downsample2d",
    "ResBlock2d",
    "Upsample2d",
    "group_norm",
]


def group_norm(channels: int, max_groups: int = 32, min_group_channels: int = 4) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= max_groups that divides ``channels`` and keeps at least
    ``min_group_channels`` channels per group (one channel per group would be InstanceNorm, which erases
    each image's mean colour -- small CPU models have 8-32 channels)."""
    groups = max(1, min(max_groups, channels // min_group_channels))
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels, eps=1e-6, affine=True)


class ResBlock2d(nn.Module):
    """x -> x + conv(silu(norm(conv(silu(norm(x)))))); 1x1 projection on the skip when channels change."""

    def __init__(self, in_channels: int, out_channels: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C_out, H, W)
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Downsample2d(nn.Module):
    """Halve H and W with a stride-2 3x3 convolution (asymmetric pad as in VQGAN)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C, H/2, W/2)
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample2d(nn.Module):
    """Double H and W: nearest-neighbour then a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C, 2H, 2W)
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ConvAttention2d(nn.Module):
    """Single-head self-attention over the H*W positions of a feature map, with a residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    #: most positions attended over: a 128 x 128 feature map (a 512 px image at f = 4) already needs 1 GiB of
    #: attention weights per image; a 4000 px photo would ask for terabytes, so it is refused with a message
    MAX_POSITIONS = 128 * 128

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C, H, W)
        b, c, h, w = x.shape
        if h * w > self.MAX_POSITIONS:
            raise ValueError(f"codec attention over a {h} x {w} feature map ({h * w:,} positions) is more than the "
                             f"{self.MAX_POSITIONS:,} it takes: the input is too large for this codec; resize it "
                             "to the size the codec was trained on")
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)  # (B, HW, C) each
        out = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)).squeeze(1)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class ConvEncoder2d(nn.Module):
    """Image (B, in_channels, H, W) -> features (B, out_channels, H/f, W/f), f = 2 ** (len(channel_mult) - 1).

    Each level: ``num_res_blocks`` ResBlocks at ``channels * channel_mult[i]``, then a stride-2
    downsample (except the last). At the lowest resolution: ResBlock, optional attention, ResBlock.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: int = 64,
        channel_mult: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 1,
        attention: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        blocks: list[nn.Module] = []
        ch = channels
        for i, mult in enumerate(channel_mult):
            out = channels * mult
            for _ in range(num_res_blocks):
                blocks.append(ResBlock2d(ch, out, dropout))
                ch = out
            if i < len(channel_mult) - 1:
                blocks.append(Downsample2d(ch))
        blocks.append(ResBlock2d(ch, ch, dropout))
        if attention:
            blocks.append(ConvAttention2d(ch))
        blocks.append(ResBlock2d(ch, ch, dropout))
        self.blocks = nn.Sequential(*blocks)
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks(self.conv_in(x))
        return self.conv_out(F.silu(self.norm_out(h)))


class ConvDecoder2d(nn.Module):
    """Features (B, in_channels, h, w) -> image (B, out_channels, h*f, w*f): the mirror of ConvEncoder2d."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: int = 64,
        channel_mult: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 1,
        attention: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        ch = channels * channel_mult[-1]
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        blocks: list[nn.Module] = [ResBlock2d(ch, ch, dropout)]
        if attention:
            blocks.append(ConvAttention2d(ch))
        blocks.append(ResBlock2d(ch, ch, dropout))
        for i, mult in reversed(list(enumerate(channel_mult))):
            out = channels * mult
            for _ in range(num_res_blocks):
                blocks.append(ResBlock2d(ch, out, dropout))
                ch = out
            if i > 0:
                blocks.append(Upsample2d(ch))
        self.blocks = nn.Sequential(*blocks)
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)

    @property
    def last_layer(self) -> torch.nn.Parameter:
        """The final conv weight (VQGAN's adaptive GAN weight is computed from gradients at it)."""
        return self.conv_out.weight

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks(self.conv_in(x))
        return self.conv_out(F.silu(self.norm_out(h)))
