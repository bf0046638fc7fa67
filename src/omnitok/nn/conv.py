"""Convolutional building blocks for image / video codecs (VQGAN family).

ResBlock (GroupNorm + SiLU + 3x3 conv, twice, with a 1x1 skip when channels change), strided
downsampling, nearest-neighbour upsampling, single-head self-attention over a conv feature map, and the
encoder / decoder stacks built from them (Esser et al., "Taming Transformers", arXiv 2012.09841).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

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
    "per_frame",
]


def group_norm(channels: int, max_groups: int = 32, min_group_channels: int = 4) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= max_groups that divides ``channels`` and keeps at least
    ``min_group_channels`` channels per group (one channel per group would be InstanceNorm, which erases
    each image's mean colour -- small CPU models have 8-32 channels)."""
    groups = max(1, min(max_groups, channels // min_group_channels))
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels, eps=1e-6, affine=True)


def per_frame(module: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """A 2-D module applied to every frame of a video on its own (a norm's statistics too: none over time):
    (B, C, T, H, W) -> (B, C', T, H', W')."""
    b, c, t, h, w = x.shape
    y = module(x.transpose(1, 2).reshape(b * t, c, h, w))  # (B*T, C', H', W')
    return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)


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


def _res_blocks(ch: int, out: int, n: int, dropout: float) -> list[nn.Module]:
    """``n`` ResBlocks from ``ch`` to ``out`` channels (the first changes the width)."""
    return [ResBlock2d(ch if i == 0 else out, out, dropout) for i in range(n)]


def _middle(ch: int, attention: bool, dropout: float) -> list[nn.Module]:
    """The lowest-resolution block of both stacks: ResBlock, optional attention, ResBlock."""
    return [ResBlock2d(ch, ch, dropout), *([ConvAttention2d(ch)] if attention else []), ResBlock2d(ch, ch, dropout)]


class _ConvStack2d(nn.Module, ABC):
    """What the encoder and decoder share: their arguments and ``conv_in -> blocks -> GroupNorm, SiLU -> conv_out``;
    each builds its ``blocks`` (:meth:`body`) from the width after ``conv_in`` (:meth:`stem_width`)."""

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
        ch = self.stem_width(channels, channel_mult)
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        blocks, ch = self.body(ch, channels, channel_mult, num_res_blocks, attention, dropout)
        self.blocks = nn.Sequential(*blocks)
        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)

    @abstractmethod
    def stem_width(self, channels: int, channel_mult: Sequence[int]) -> int:
        """The width ``conv_in`` maps to."""

    @abstractmethod
    def body(self, ch: int, channels: int, channel_mult: Sequence[int], num_res_blocks: int, attention: bool,
             dropout: float) -> tuple[list[nn.Module], int]:
        """(the blocks from ``ch`` channels, the width they end at)."""

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks(self.conv_in(x))
        return self.conv_out(F.silu(self.norm_out(h)))


class ConvEncoder2d(_ConvStack2d):
    """Image (B, in_channels, H, W) -> features (B, out_channels, H/f, W/f), f = 2 ** (len(channel_mult) - 1).

    Each level: ``num_res_blocks`` ResBlocks at ``channels * channel_mult[i]``, then a stride-2
    downsample (except the last). At the lowest resolution: ResBlock, optional attention, ResBlock.
    """

    def stem_width(self, channels: int, channel_mult: Sequence[int]) -> int:
        return channels

    def body(self, ch: int, channels: int, channel_mult: Sequence[int], num_res_blocks: int, attention: bool,
             dropout: float) -> tuple[list[nn.Module], int]:
        blocks: list[nn.Module] = []
        for i, mult in enumerate(channel_mult):
            blocks += _res_blocks(ch, channels * mult, num_res_blocks, dropout)
            ch = channels * mult if num_res_blocks else ch  # no blocks: the width stays
            if i < len(channel_mult) - 1:
                blocks.append(Downsample2d(ch))
        return blocks + _middle(ch, attention, dropout), ch


class ConvDecoder2d(_ConvStack2d):
    """Features (B, in_channels, h, w) -> image (B, out_channels, h*f, w*f): the mirror of ConvEncoder2d."""

    def stem_width(self, channels: int, channel_mult: Sequence[int]) -> int:
        return channels * channel_mult[-1]

    def body(self, ch: int, channels: int, channel_mult: Sequence[int], num_res_blocks: int, attention: bool,
             dropout: float) -> tuple[list[nn.Module], int]:
        blocks = _middle(ch, attention, dropout)
        for i, mult in reversed(list(enumerate(channel_mult))):
            blocks += _res_blocks(ch, channels * mult, num_res_blocks, dropout)
            ch = channels * mult if num_res_blocks else ch
            if i > 0:
                blocks.append(Upsample2d(ch))
        return blocks, ch

    @property
    def last_layer(self) -> torch.nn.Parameter:
        """The final conv weight (VQGAN's adaptive GAN weight is computed from gradients at it)."""
        return self.conv_out.weight
