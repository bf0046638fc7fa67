"""A pre-allocated static KV cache for fast decoding: prefill once, then fixed-shape one-token steps.

Buffers are ``(n_layer, B, H_kv, T_max, D)`` and never change shape; the write position is a tensor ``index``
(B,) (one per row, so rows may also be rolled back independently, e.g. after speculative Jacobi decoding), and
``valid`` (B, T_max) marks which slots hold real tokens (False for left padding). Every step attends over all
``T_max`` slots under the mask ``slot <= query_slot and valid`` (a query always sees its own slot, so padded
rows never produce NaNs). Nothing in :meth:`decode_step` reads a tensor back to the host, so it can be captured
as a CUDA graph (``torch.compile(mode="reduce-overhead")`` or ``torch.cuda.graphs``).

Usage::

    cache = StaticKVCache(model, batch_size=B, max_len=T_max)
    logits = cache.prefill(prompt_ids, attention_mask=mask)     # (B, T, V); left padding -> mask False
    next_id = logits[:, -1].argmax(-1, keepdim=True)            # (B, 1)
    logits = cache.decode_step(next_id)                         # (B, 1, V); positions default per row
"""

from __future__ import annotations

import torch
from torch import Tensor

from omnitok.model.transformer import Transformer
from omnitok.nn.attention import same_segment

__all__ = ["StaticKVCache"]


class StaticKVCache:
    """Static KV cache bound to one :class:`Transformer` (weights are not copied)."""

    def __init__(self, model: Transformer, batch_size: int, max_len: int | None = None,
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> None:
        cfg = model.config
        ref = next(model.parameters())
        self.model = model
        self.batch_size = int(batch_size)
        self.max_len = int(max_len or cfg.max_seq_len)
        self.device = torch.device(device) if device is not None else ref.device
        self.dtype = dtype or ref.dtype
        shape = (cfg.n_layer, self.batch_size, cfg.n_kv_head, self.max_len, cfg.head_dim)
        self.k = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.v = torch.zeros(shape, dtype=self.dtype, device=self.device)
        self.valid = torch.zeros(self.batch_size, self.max_len, dtype=torch.bool, device=self.device)
        self.index = torch.zeros(self.batch_size, dtype=torch.long, device=self.device)  # next slot per row
        self.next_position = torch.zeros(self.batch_size, dtype=torch.long, device=self.device)  # per row
        self.slots = torch.arange(self.max_len, device=self.device)  # (T_max,)
        # fixed addresses, so torch.compile(mode="reduce-overhead") keeps the step in a CUDA graph even though
        # it mutates these tensors in place (as Hugging Face's StaticCache does)
        for t in (self.k, self.v, self.valid, self.index, self.next_position, self.slots):
            torch._dynamo.mark_static_address(t)

    # ----- state ------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything (in place: the buffers keep their addresses for captured graphs)."""
        self.valid.zero_()
        self.index.zero_()
        self.next_position.zero_()

    def rewind(self, num_tokens: Tensor | int) -> None:
        """Drop the last ``num_tokens`` (int or (B,) long) tokens of each row; their slots are reused."""
        n = torch.as_tensor(num_tokens, device=self.device, dtype=torch.long)
        self.index.sub_(n)
        self.next_position.sub_(n)

    def layer(self, i: int) -> tuple[Tensor, Tensor]:
        """Layer i's (k, v) buffers, each (B, H_kv, T_max, D)."""
        return self.k[i], self.v[i]

    def default_positions(self, T: int) -> Tensor:
        """(B, T): continue each row's positions (``next_position`` + 0..T-1)."""
        return self.next_position[:, None] + torch.arange(T, device=self.device)

    def plan(self, T: int, attention_mask: Tensor | None,
             segment_ids: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mark T new slots per row valid (or not, per ``attention_mask`` (B, T) bool) and build the mask.

        segment_ids (B, T): new tokens sharing an id >= 0 also see each other's (later) slots: a bidirectional
        block, recomputed in place each step of masked decoding (``extend`` then ``rewind``).
        Returns write_slots (B, T) long and the attention mask (B, 1, T, T_max) bool. Called by the model.
        """
        write = self.index[:, None] + torch.arange(T, device=self.device)  # (B, T)
        new_valid = (torch.ones(self.batch_size, T, dtype=torch.bool, device=self.device)
                     if attention_mask is None else attention_mask.to(device=self.device, dtype=torch.bool))
        self.valid.scatter_(1, write, new_valid)
        slots = self.slots[None, None, :]  # (1, 1, T_max)
        q_slot = write[:, :, None]  # (B, T, 1)
        mask = ((slots <= q_slot) & self.valid[:, None, :]) | (slots == q_slot)  # (B, T, T_max)
        if segment_ids is not None:
            cols = write[:, None, :].expand(-1, T, -1)  # (B, T, T): the new tokens' own slots
            both = same_segment(segment_ids.to(self.device)) & new_valid[:, None, :]  # (B, T, T)
            mask.scatter_(2, cols, mask.gather(2, cols) | both)
        return write, mask[:, None]

    def advance(self, T: int) -> None:
        """Called by the model after a cached forward of T tokens."""
        self.index.add_(T)
        self.next_position.add_(T)

    # ----- decoding -------------------------------------------------------------------------------------
    @torch.no_grad()
    def extend(self, idx: Tensor, positions: Tensor | None = None,
               attention_mask: Tensor | None = None, segment_ids: Tensor | None = None) -> Tensor:
        """Append T tokens per row (B, T) and return their logits (B, T, V) (speculative verification, chunks).

        positions: (B, T) or (A, B, T) for multi-axis RoPE; default continues each row's positions.
        segment_ids: (B, T), bidirectional blocks among the new tokens (see :meth:`plan`).
        """
        B, T = idx.shape
        if self.batch_size != B:
            raise ValueError(f"idx has batch {B}, the cache was built for {self.batch_size}")
        logits, _ = self.model(idx, position_ids=positions, attention_mask=attention_mask, kv_cache=self,
                               segment_ids=segment_ids)
        return logits

    @torch.no_grad()
    def prefill(self, idx: Tensor, positions: Tensor | None = None,
                attention_mask: Tensor | None = None) -> Tensor:
        """Reset, then run the prompt idx (B, T) -> logits (B, T, V).

        attention_mask (B, T) bool, False on (left) padding. Default positions count only real tokens, so a
        left-padded row gets the same positions (and logits) as its unpadded run; ``next_position`` is then
        each row's real length.
        """
        B, T = idx.shape
        if self.max_len < T:
            raise ValueError(f"prompt length {T} exceeds the cache's max_len {self.max_len}")
        self.reset()
        if positions is None and attention_mask is not None:
            m = attention_mask.to(device=idx.device, dtype=torch.long)
            positions = (m.cumsum(1) - 1).clamp(min=0)  # (B, T)
        logits = self.extend(idx, positions, attention_mask)
        if attention_mask is not None:
            self.next_position.copy_(attention_mask.to(device=self.device, dtype=torch.long).sum(1))
        return logits

    @torch.no_grad()
    def decode_step(self, idx: Tensor, positions: Tensor | None = None) -> Tensor:
        """One token per row: idx (B, 1), positions (B, 1) (or (A, B, 1)) or None -> logits (B, 1, V).

        Fixed shapes, no host synchronisation: safe to capture as a CUDA graph.
        """
        return self.extend(idx, positions)
