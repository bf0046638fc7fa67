"""A small text encoder over the project's BPE ids, trained with the denoiser (Imagen / LDM condition on a text
encoder's token sequence; here it is learned from scratch, Rombach et al., arXiv 2112.10752, sec. 4.3.2).

A learned start token is prepended to every caption, so the empty caption (the unconditional branch of
classifier-free guidance) is the start token alone: ``lengths = 0`` means "no condition".
:class:`EmbeddingConditioner` takes a frozen outside encoder's text embedding instead, with the same outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from omnitok.diffusion.layers import TransformerBlock

__all__ = ["EmbeddingConditioner", "TextEncoder", "pad_ids"]


def pad_ids(ids: Sequence[Sequence[int] | Tensor], max_len: int) -> tuple[Tensor, Tensor]:
    """Ragged id lists -> (ids (B, L) long zero-padded, lengths (B,) long), each truncated to ``max_len``."""
    rows = [torch.as_tensor(x, dtype=torch.long).reshape(-1)[:max_len] for x in ids]
    L = max([len(r) for r in rows] + [1])
    out = torch.zeros(len(rows), L, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, torch.tensor([len(r) for r in rows], dtype=torch.long)


class TextEncoder(nn.Module):
    """ids (B, L), lengths (B,) -> tokens (B, L+1, dim), mask (B, L+1) bool, pooled (B, dim)."""

    def __init__(self, vocab_size: int, dim: int = 64, layers: int = 2, heads: int = 4, max_len: int = 16) -> None:
        super().__init__()
        self.vocab_size, self.dim, self.max_len = vocab_size, dim, max_len
        self.embed = nn.Embedding(vocab_size, dim)
        self.start = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, max_len + 1, dim))
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.start, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList([TransformerBlock(dim, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        ids = ids[:, : self.max_len]
        B, L = ids.shape
        if L and int(ids.max()) >= self.vocab_size:
            raise ValueError(f"text encoder: id {int(ids.max())} >= vocab_size {self.vocab_size}")
        mask = torch.arange(L + 1, device=ids.device)[None] <= lengths.clamp(max=L)[:, None]  # (B, L+1), start valid
        h = torch.cat([self.start.expand(B, 1, self.dim), self.embed(ids)], 1) + self.pos[:, : L + 1]  # (B, L+1, D)
        for block in self.blocks:
            h = block(h, mask=mask)
        h = self.norm(h)
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # (B, D) mean over valid tokens
        return h, mask, pooled


class EmbeddingConditioner(nn.Module):
    """A frozen outside text encoder's embedding as the condition (e.g. the CLIP text tower of ``omnitok.align``,
    as DALL-E 2 / unCLIP conditions on CLIP text embeddings, Ramesh et al., arXiv 2204.06125).

    emb (B, 1, embed_dim) float, lengths (B,) (1 = present, 0 = the unconditional branch) -> tokens (B, 2, dim)
    ``[start, projected embedding]``, mask (B, 2), pooled (B, dim): the same outputs as :class:`TextEncoder`.
    """

    max_len = 1

    def __init__(self, embed_dim: int, dim: int = 64) -> None:
        super().__init__()
        self.embed_dim, self.dim = embed_dim, dim
        self.start = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.start, std=0.02)
        self.proj = nn.Sequential(nn.Linear(embed_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, emb: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if emb.dim() != 3 or emb.shape[1:] != (1, self.embed_dim):
            raise ValueError(f"embedding conditioner: expected (B, 1, {self.embed_dim}), got {tuple(emb.shape)}")
        B = emb.shape[0]
        h = self.norm(torch.cat([self.start.expand(B, 1, self.dim), self.proj(emb.float())], 1))  # (B, 2, dim)
        mask = torch.stack([torch.ones_like(lengths, dtype=torch.bool), lengths > 0], 1)  # (B, 2)
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return h, mask, pooled
