"""A small text-conditioned U-Net denoiser (DDPM's U-Net, Ho et al., arXiv 2006.11239, with the LDM conditioning of
Rombach et al., arXiv 2112.10752).

* the timestep and the pooled text embedding enter every residual block through adaptive group norm,
  ``GN(h) * (1 + scale) + shift`` (Dhariwal & Nichol, arXiv 2105.05233, sec. 3);
* at the levels in ``attention_levels`` a transformer block attends over the feature map and across to the text
  tokens (cross-attention, LDM sec. 3.3);
* each residual branch ends in a zero-initialised convolution, so the network starts as the identity on its skips.

``forward(x (B, C, H, W), t (B,), context (B, L, Dc), context_mask (B, L), pooled (B, Dc)) -> (B, C, H, W)``;
H and W must be divisible by ``2 ** (len(channel_mult) - 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnitok.diffusion.layers import TransformerBlock
from omnitok.nn.conv import Downsample2d, Upsample2d, group_norm
from omnitok.nn.timestep import TimestepEmbedding

__all__ = ["UNet"]


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """x, emb -> x + conv(silu(AdaGN(conv(silu(GN(x))), emb))); 1x1 skip when channels change."""

    def __init__(self, cin: int, cout: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = group_norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = group_norm(cout)
        self.conv2 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, cout, H, W)
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)  # (B, cout, 1, 1) each
        h = self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))
        return self.skip(x) + h


class SpatialTransformer(nn.Module):
    """Feature map -> tokens -> self-attention + cross-attention to the text -> feature map (residual)."""

    def __init__(self, channels: int, heads: int, context_dim: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.block = TransformerBlock(channels, heads, context_dim)
        self.proj_out = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor, context: Tensor, context_mask: Tensor) -> Tensor:
        B, C, H, W = x.shape
        h = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)  # (B, H*W, C)
        h = self.block(h, context=context, context_mask=context_mask)
        return x + self.proj_out(h.transpose(1, 2).reshape(B, C, H, W))


class UNet(nn.Module):
    """Text-conditioned U-Net; all arguments are plain values (saved in the model's config.json)."""

    def __init__(self, in_channels: int, channels: int = 32, channel_mult: Sequence[int] = (1, 2, 2),
                 num_res_blocks: int = 1, attention_levels: Sequence[int] = (2,), heads: int = 4,
                 context_dim: int = 64) -> None:
        super().__init__()
        levels = len(channel_mult)
        bad = [a for a in attention_levels if not 0 <= a < levels]
        if bad:
            raise ValueError(f"unet: attention_levels {list(attention_levels)} must lie in [0, {levels - 1}]")
        self.factor = 2 ** (levels - 1)
        emb_dim = 4 * channels
        self.time = TimestepEmbedding(emb_dim)
        self.pooled = nn.Linear(context_dim, emb_dim)
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.down = nn.ModuleList()
        skips, ch = [channels], channels
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                blocks = nn.ModuleList([ResBlock(ch, channels * mult, emb_dim)])
                ch = channels * mult
                if level in attention_levels:
                    blocks.append(SpatialTransformer(ch, heads, context_dim))
                self.down.append(blocks)
                skips.append(ch)
            if level < levels - 1:
                self.down.append(nn.ModuleList([Downsample2d(ch)]))
                skips.append(ch)
        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_dim), SpatialTransformer(ch, heads, context_dim),
                                  ResBlock(ch, ch, emb_dim)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                blocks = nn.ModuleList([ResBlock(ch + skips.pop(), channels * mult, emb_dim)])
                ch = channels * mult
                if level in attention_levels:
                    blocks.append(SpatialTransformer(ch, heads, context_dim))
                if level > 0 and i == num_res_blocks:
                    blocks.append(Upsample2d(ch))
                self.up.append(blocks)
        self.norm_out = group_norm(ch)
        self.conv_out = _zero(nn.Conv2d(ch, in_channels, 3, padding=1))

    def _run(self, blocks: nn.ModuleList, h: Tensor, emb: Tensor, context: Tensor, mask: Tensor) -> Tensor:
        for b in blocks:
            if isinstance(b, ResBlock):
                h = b(h, emb)
            elif isinstance(b, SpatialTransformer):
                h = b(h, context, mask)
            else:
                h = b(h)
        return h

    def forward(self, x: Tensor, t: Tensor, context: Tensor, context_mask: Tensor, pooled: Tensor) -> Tensor:
        if x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise ValueError(f"unet: input {tuple(x.shape[-2:])} is not divisible by {self.factor}")
        emb = self.time(t) + self.pooled(pooled)  # (B, 4 * channels)
        h = self.conv_in(x)
        hs = [h]
        for blocks in self.down:
            h = self._run(blocks, h, emb, context, context_mask)
            hs.append(h)
        h = self._run(self.mid, h, emb, context, context_mask)
        for blocks in self.up:
            h = self._run(blocks, torch.cat([h, hs.pop()], dim=1), emb, context, context_mask)
        return self.conv_out(F.silu(self.norm_out(h)))
