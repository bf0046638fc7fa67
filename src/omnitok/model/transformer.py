"""The unified decoder-only transformer: ids in, next-id logits out (nanoGPT-style ``forward``).

Llama-style blocks: pre-RMSNorm, rotary attention (GQA, optional QK-norm), SwiGLU. Parameter names follow
Hugging Face Llama / Qwen3 (``embed_tokens``, ``layers.{i}.self_attn.q_proj``, ..., ``norm``, ``lm_head``) so the
export is a rename. The model knows no modality: the vocabulary gives every modality an id range.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from omnitok.model.config import ModelConfig
from omnitok.model.weights import check_state, untie_head
from omnitok.nn.attention import Attention, causal_document_mask
from omnitok.nn.rmsnorm import RMSNorm
from omnitok.nn.rope import RotaryEmbedding
from omnitok.nn.swiglu import SwiGLU

__all__ = ["Block", "Transformer", "lm_loss"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
GENERATION_CONFIG_NAME = "generation_config.json"


def lm_loss(logits: Tensor, targets: Tensor, z_loss: float = 0.0, ignore_index: int = -100,
            normalizer: Tensor | float | None = None) -> tuple[Tensor, Tensor]:
    """Next-token cross-entropy (+ z-loss) summed over targets != ignore_index, divided by ``normalizer``
    (default: the number of such targets, i.e. the mean).

    logits (B, T, V) aligned with targets (B, T) (targets already shifted: target t is the id after t), or
    logits (N, V) with targets (N,) for selected positions.
    Returns (loss scalar, per-token cross-entropy shaped like targets, float32, 0 on ignored positions).
    """
    V = logits.shape[-1]
    flat = logits.float().view(-1, V)
    ce = F.cross_entropy(flat, targets.reshape(-1), ignore_index=ignore_index, reduction="none")
    valid = (targets.reshape(-1) != ignore_index)
    n = valid.sum().clamp(min=1) if normalizer is None else normalizer
    loss = ce.sum() / n
    if z_loss > 0:  # PaLM z-loss: keeps log Z near 0 (arXiv 2204.02311)
        lse = torch.logsumexp(flat, dim=-1)
        loss = loss + z_loss * (lse.pow(2) * valid).sum() / n
    return loss, ce.view(targets.shape)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.self_attn = Attention(cfg.dim, cfg.n_head, cfg.n_kv_head, cfg.head_dim, cfg.qk_norm, cfg.norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = SwiGLU(cfg.dim, cfg.ffn_hidden)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None = None,
                cache: tuple[Tensor, Tensor] | None = None, write_slots: Tensor | None = None) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, write_slots)
        return x + self.mlp(self.post_attention_layernorm(x))


class Transformer(nn.Module):
    """``forward(idx, targets=None, position_ids=None, document_ids=None) -> (logits, loss)``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.rotary = RotaryEmbedding(config.head_dim, config.rope_theta, config.rope_axes, config.rope_sections)
        self.gradient_checkpointing = False
        self.reset_parameters()

    # ----- init ---------------------------------------------------------------------------------
    def reset_parameters(self) -> None:
        """Normal(0, init_std) for linear / embedding weights; residual outputs scaled by 1/sqrt(2 n_layer)
        (GPT-2); norms at 1."""
        std = self.config.init_std
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.ones_(p)
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * self.config.n_layer))
            else:
                nn.init.normal_(p, 0.0, std)

    def num_params(self, include_embeddings: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        if not include_embeddings:
            n -= self.embed_tokens.weight.numel()
            if not self.config.tie_embeddings:
                n -= self.lm_head.weight.numel()
        return n

    # ----- forward --------------------------------------------------------------------------------
    def default_positions(self, idx: Tensor) -> Tensor:
        B, T = idx.shape
        return torch.arange(T, device=idx.device).unsqueeze(0).expand(B, T)

    def forward(self, idx: Tensor, targets: Tensor | None = None, position_ids: Tensor | None = None,
                document_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                kv_cache: Any = None, logits_mask: Tensor | None = None,
                segment_ids: Tensor | None = None, inputs_embeds: Tensor | None = None,
                return_hidden: bool = False) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) long -> logits (B, T, V) (autocast dtype, else the weights' dtype), loss or None.

        targets (B, T): next-token ids aligned with idx (already shifted), -100 = no loss.
        position_ids (B, T), or (A, B, T) with ``rope_axes = A``; default 0..T-1.
        document_ids (B, T): packed documents; attention never crosses documents (block-diagonal causal).
        segment_ids (B, T): -1 = causal; positions sharing an id >= 0 (within one document) attend to each other
        both ways (a bidirectional block, e.g. a masked image predicted at once). The data marks the block;
        the model does not know what it holds. With ``kv_cache`` it applies to the T new tokens.
        attention_mask (B, T) bool: only with ``kv_cache``; False marks (left) padding.
        kv_cache: a :class:`~omnitok.model.kv_cache.StaticKVCache`; usually driven through its
        ``prefill`` / ``decode_step`` / ``extend`` methods rather than directly.
        logits_mask (B, T) bool: compute the head only where True and return logits (N, V) for those N
        positions in row-major order (training with no loss on the condition skips the prompt's logits);
        ``targets`` are then taken at the same positions.
        inputs_embeds (B, T, C), optional: added to the token embeddings (zeros where only the id counts), e.g.
        continuous image patches projected to the model width (the Transfusion hybrid, ``model/transfusion.py``).
        return_hidden: return the final-normed hidden states (B, T, C) (or (N, C) under ``logits_mask``) instead of
        logits, and no loss; the caller applies ``lm_head`` (or its own head) where it wants.
        """
        if idx.dim() != 2 or idx.dtype != torch.long:
            raise ValueError(f"idx must be (B, T) int64, got {tuple(idx.shape)} {idx.dtype}")
        B, T = idx.shape
        if kv_cache is None and self.config.max_seq_len < T:
            raise ValueError(f"sequence length {T} exceeds max_seq_len {self.config.max_seq_len}")
        if position_ids is None:
            position_ids = kv_cache.default_positions(T) if kv_cache is not None else self.default_positions(idx)
        cos, sin = self.rotary(position_ids)  # (B, T, D)
        x = self.embed_tokens(idx)  # (B, T, C)
        if inputs_embeds is not None:
            if inputs_embeds.shape != x.shape:
                raise ValueError(f"inputs_embeds must be (B, T, C) = {tuple(x.shape)}, got {tuple(inputs_embeds.shape)}")
            x = x + inputs_embeds.to(x.dtype)
        write_slots = None
        if segment_ids is not None and segment_ids.shape != (B, T):
            raise ValueError(f"segment_ids must be (B, T) = {(B, T)}, got {tuple(segment_ids.shape)}")
        if kv_cache is not None:
            write_slots, mask = kv_cache.plan(T, attention_mask, segment_ids)  # (B, T), (B, 1, T, T_max)
        elif attention_mask is not None:
            raise ValueError("attention_mask is only used with kv_cache; pack documents with document_ids")
        elif document_ids is not None or segment_ids is not None:
            docs = document_ids if document_ids is not None else torch.zeros_like(idx)
            mask = causal_document_mask(docs, segment_ids)  # (B, 1, T, T)
        else:
            mask = None
        for i, layer in enumerate(self.layers):
            cache = kv_cache.layer(i) if kv_cache is not None else None
            if self.gradient_checkpointing and self.training and cache is None:
                x = checkpoint(layer, x, cos, sin, mask, use_reentrant=False)
            else:
                x = layer(x, cos, sin, mask, cache, write_slots)
        if kv_cache is not None:
            kv_cache.advance(T)
        if logits_mask is not None:
            if logits_mask.shape != (B, T) or logits_mask.dtype != torch.bool:
                raise ValueError(f"logits_mask must be (B, T) = {(B, T)} bool, got {tuple(logits_mask.shape)} "
                                 f"{logits_mask.dtype}")
            x = x[logits_mask]  # (N, C)
            if targets is not None:
                targets = targets[logits_mask]  # (N,)
        x = self.norm(x)
        if return_hidden:
            return x, None
        logits = self.lm_head(x)  # (B, T, V) or (N, V)
        if targets is None:
            return logits, None
        loss, _ = lm_loss(logits, targets, self.config.z_loss)
        return logits, loss

    # ----- folders --------------------------------------------------------------------------------
    #: settings a model folder may record for generation (``generation_config.json``; see
    #: :func:`omnitok.generation.generate.recorded_defaults`): ``grids`` per output, ``sampling`` per output
    generation_config: dict[str, Any]

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Write ``model.safetensors`` (tied weights stored once), then ``config.json`` with the weights' sha256,
        each fsync'ed and renamed into place (a kill leaves the old file or the new one, never half of one);
        ``generation_config.json`` too when the model carries one."""
        from safetensors.torch import save_file

        from omnitok._io import fsync_replace, sha256_file, write_json_atomic

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        if self.config.tie_embeddings:
            state.pop("lm_head.weight", None)
        tmp = directory / (WEIGHTS_NAME + ".tmp")
        save_file(state, str(tmp), metadata={"format": "pt", "model_class": "Transformer"})
        digest = sha256_file(tmp)
        fsync_replace(tmp, directory / WEIGHTS_NAME)
        cfg = {"model_class": "Transformer", "format_version": 1, **self.config.to_dict(), "weights_sha256": digest}
        write_json_atomic(directory / CONFIG_NAME, cfg)
        if getattr(self, "generation_config", None):
            write_json_atomic(directory / GENERATION_CONFIG_NAME, self.generation_config)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], map_location: str | torch.device = "cpu",
                        verify: bool = True) -> Transformer:
        """Load a folder written by :meth:`save_pretrained` (or a training checkpoint folder).

        Checks before any weight is used: ``config.json`` is an object whose values have the right types, every
        tensor has the name, shape and a floating dtype the config implies, and (``verify``, the default) the
        weights file's sha256 equals the one recorded at save. Any mismatch is a :class:`CheckpointError` that
        names the file. ``verify=False`` skips only the checksum (a large model on a trusted disk)."""
        from omnitok._io import CheckpointError, load_safetensors, read_json, sha256_file

        directory = Path(directory)
        cfg_path, w_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        if not directory.is_dir():
            raise CheckpointError(f"{directory}: no such model folder")
        if not cfg_path.is_file() or not w_path.is_file():
            raise CheckpointError(f"{directory} must contain {CONFIG_NAME} and {WEIGHTS_NAME}")
        raw = read_json(cfg_path)
        if not isinstance(raw, dict):
            raise CheckpointError(f"{cfg_path}: expected a JSON object, got a {type(raw).__name__}")
        digest = raw.get("weights_sha256")
        cfg = raw["model"] if isinstance(raw.get("model"), dict) else raw  # a training checkpoint's config.json
        try:
            mcfg = ModelConfig.from_dict(cfg, where=str(cfg_path))
        except (ValueError, TypeError) as e:
            raise CheckpointError(str(e) if str(cfg_path) in str(e) else f"{cfg_path}: {e}") from e
        if verify and isinstance(digest, str) and sha256_file(w_path) != digest:
            raise CheckpointError(f"{w_path}: sha256 differs from the one recorded in {cfg_path} at save: the "
                                  "weights file is damaged or was replaced")
        state = load_safetensors(w_path, map_location=str(map_location))
        model = cls(mcfg)
        if model.config.tie_embeddings:
            untie_head(state)
        check_state(model, state, str(w_path), str(cfg_path))
        for name, t in state.items():
            if not t.is_floating_point():
                raise CheckpointError(f"{w_path}: {name} has dtype {t.dtype}, expected a floating-point tensor")
        model.load_state_dict(state)
        gen_path = directory / GENERATION_CONFIG_NAME
        if gen_path.is_file():
            gc = read_json(gen_path)
            if not isinstance(gc, dict):
                raise CheckpointError(f"{gen_path}: expected a JSON object, got a {type(gc).__name__}")
            model.generation_config = gc
        return model.to(map_location)
