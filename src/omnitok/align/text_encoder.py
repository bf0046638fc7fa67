"""The text tower: BPE ids (the project's text codec) -> one embedding per text.

Token embeddings, a bidirectional transformer (``align/encoder.py``), the mean over the text's tokens, a linear
projection into the shared space (CLIP, Radford et al. 2021, arXiv 2103.00020, sec. 2.4; CLIP pools the EOT token,
a mean is as good at this size and needs no special token).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from omnitok.align.encoder import TransformerEncoder

__all__ = ["TextEncoder", "pad_ids"]


def pad_ids(ids: Sequence[Sequence[int] | Tensor], max_len: int) -> tuple[Tensor, Tensor]:
    """Ragged id lists -> (ids (B, L) long, zero padded; lengths (B,) long), truncated to ``max_len``."""
    rows = [torch.as_tensor(x, dtype=torch.long).reshape(-1)[:max_len] for x in ids]
    lengths = torch.tensor([max(len(r), 1) for r in rows], dtype=torch.long)
    out = torch.zeros(len(rows), int(lengths.max()) if rows else 1, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, lengths


class TextEncoder(nn.Module):
    """ids (B, L) long, lengths (B,) -> (B, embed_dim), not normalised."""

    def __init__(self, vocab_size: int, embed_dim: int, dim: int = 128, n_layer: int = 2, n_head: int = 4,
                 max_len: int = 32) -> None:
        super().__init__()
        self.vocab_size, self.max_len = vocab_size, max_len
        self.embed = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.encoder = TransformerEncoder(dim, n_layer, n_head)
        self.proj = nn.Linear(dim, embed_dim, bias=False)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        ids = ids[:, : self.max_len]
        valid = torch.arange(ids.shape[1], device=ids.device)[None] < lengths[:, None]  # (B, L)
        return self.proj(self.encoder(self.embed(ids), valid))

    def features(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Per-token states for conditioning another model: ((B, L, dim), valid bool (B, L)); the pooled
        embedding is ``proj`` of their masked mean."""
        ids = ids[:, : self.max_len]
        valid = torch.arange(ids.shape[1], device=ids.device)[None] < lengths[:, None]  # (B, L)
        return self.encoder.tokens(self.embed(ids), valid), valid
