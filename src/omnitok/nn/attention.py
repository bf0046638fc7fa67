"""Causal self-attention with PyTorch SDPA: grouped-query attention, QK-norm, document masks, a static KV cache.

* GQA (Ainslie et al. 2023, arXiv 2305.13245): ``n_kv_head`` key/value heads shared by ``n_head // n_kv_head``
  query heads each.
* QK-norm (Chameleon, arXiv 2405.09818; Qwen3): RMSNorm over each query / key head before RoPE, which keeps
  mixed-modal training stable.
* Masks: none (plain causal, ``is_causal=True``, the flash kernel on GPU), or a boolean ``(B, 1, Tq, Tk)`` mask
  built by the model (block-diagonal causal for packed documents, or the cache's validity mask), optionally
  with bidirectional segments: positions that share a segment id (>= 0) see each other both ways, so a masked
  image block is predicted all at once (MaskGIT-style decoding inside the one causal model, as Show-o,
  arXiv 2408.12528). The segment ids come from the data; attention never learns what a segment holds.
* Static KV cache: the caller hands a layer's pre-allocated ``(B, H_kv, T_max, D)`` buffers and the slots to
  write; shapes never change, so the decode step can be captured as a CUDA graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnitok.nn.rmsnorm import RMSNorm
from omnitok.nn.rope import apply_rotary

__all__ = ["Attention", "causal_document_mask", "same_segment"]


def same_segment(segment_ids: Tensor) -> Tensor:
    """segment_ids (B, T) -> bool (B, T, T): q and k lie in the same bidirectional segment (id >= 0)."""
    return (segment_ids[:, :, None] == segment_ids[:, None, :]) & (segment_ids >= 0)[:, :, None]


def causal_document_mask(document_ids: Tensor, segment_ids: Tensor | None = None) -> Tensor:
    """document_ids (B, T) -> bool (B, 1, T, T): q may see k iff same document and k <= q.

    segment_ids (B, T), optional: -1 = causal; positions of one document sharing a segment id >= 0 also see
    each other in both directions (a bidirectional block inside a causal sequence).
    Padding (document id -1) attends only to padding, so no query row is empty.
    """
    T = document_ids.shape[1]
    same = document_ids[:, :, None] == document_ids[:, None, :]  # (B, T, T)
    allowed = torch.ones(T, T, dtype=torch.bool, device=document_ids.device).tril()  # (T, T)
    if segment_ids is not None:
        allowed = allowed | same_segment(segment_ids)  # (B, T, T)
    return (same & allowed)[:, None]


class Attention(nn.Module):
    """Multi-head causal self-attention; weight names follow Llama / Qwen3 (q_proj, k_proj, ..., q_norm)."""

    def __init__(self, dim: int, n_head: int, n_kv_head: int, head_dim: int, qk_norm: bool = False,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        if n_head % n_kv_head:
            raise ValueError(f"n_head ({n_head}) must be a multiple of n_kv_head ({n_kv_head})")
        self.n_head, self.n_kv_head, self.head_dim = n_head, n_kv_head, head_dim
        self.q_proj = nn.Linear(dim, n_head * head_dim, bias=False)
        self.k_proj = nn.Linear(dim, n_kv_head * head_dim, bias=False)
        self.v_proj = nn.Linear(dim, n_kv_head * head_dim, bias=False)
        self.o_proj = nn.Linear(n_head * head_dim, dim, bias=False)
        self.q_norm = RMSNorm(head_dim, norm_eps) if qk_norm else None
        self.k_norm = RMSNorm(head_dim, norm_eps) if qk_norm else None

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None = None,
                cache: tuple[Tensor, Tensor] | None = None, write_slots: Tensor | None = None) -> Tensor:
        """x (B, T, C); cos/sin (B, T, D); mask bool (B, 1, T, Tk) or None (plain causal).

        With ``cache = (k_buf, v_buf)`` (each (B, H_kv, T_max, D)), this step's keys / values are written at
        ``write_slots`` (B, T) and attention runs over the whole buffer under ``mask`` (B, 1, T, T_max).
        """
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim)
        k = self.k_proj(x).view(B, T, self.n_kv_head, self.head_dim)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, D)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k_buf, v_buf = cache
            idx = write_slots[:, None, :, None].expand(B, self.n_kv_head, T, self.head_dim)
            k_buf.scatter_(2, idx, k.to(k_buf.dtype))
            v_buf.scatter_(2, idx, v.to(v_buf.dtype))
            k, v = k_buf.to(q.dtype), v_buf.to(q.dtype)  # (B, H_kv, T_max, D)
        gqa = self.n_kv_head != self.n_head
        if mask is None and cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
        y = y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim)  # (B, T, H * D)
        return self.o_proj(y)
