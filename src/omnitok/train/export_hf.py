"""``omnitok export hf CKPT DIR``: write a Hugging Face folder that ``transformers`` loads with no custom code.

* plain configuration -> ``LlamaForCausalLM`` (model_type ``llama``);
* QK-norm on -> ``Qwen3ForCausalLM`` (model_type ``qwen3``: Llama plus RMSNorm on each query / key head);
* anything no standard architecture expresses exactly is refused with the reason (2-D / 3-D M-RoPE positions).

Our parameter names already follow Llama / Qwen3 and our RoPE uses their split-halves (rotate_half) layout,
so the export is a ``model.`` prefix and a config translation; no weight permutation. The folder holds
``config.json``, ``generation_config.json`` and ``model.safetensors`` (transformers is not needed to export).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch

from omnitok.generation.loading import resolve_ckpt
from omnitok.model.config import ModelConfig
from omnitok.model.transformer import Transformer

__all__ = ["ExportError", "add_arguments", "export_hf", "hf_config", "run"]


class ExportError(ValueError):
    """The configuration has no exact equivalent among the standard Hugging Face architectures."""


def hf_config(cfg: ModelConfig) -> dict[str, Any]:
    """Our config -> a Llama or Qwen3 ``config.json`` dict; raises :class:`ExportError` when impossible."""
    if cfg.rope_axes != 1:
        raise ExportError(
            f"rope_axes={cfg.rope_axes}: multi-axis (2-D / 3-D, M-RoPE) positions cannot be expressed by "
            "LlamaForCausalLM or Qwen3ForCausalLM, which take one position per token; an export would silently "
            "compute different logits. Train with rope_axes=1 to export.")
    if cfg.head_dim % 2:
        raise ExportError(f"head_dim={cfg.head_dim} must be even")
    common = {
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.dim,
        "intermediate_size": cfg.ffn_hidden,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_kv_head,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "tie_word_embeddings": cfg.tie_embeddings,
        "rope_theta": cfg.rope_theta,  # transformers < 5
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},  # transformers >= 5
        "attention_bias": False,
        "attention_dropout": 0.0,
        "initializer_range": cfg.init_std,
        "use_cache": True,
        "torch_dtype": "float32",
        "dtype": "float32",
    }
    if cfg.qk_norm:
        return {**common, "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
                "use_sliding_window": False, "sliding_window": None, "max_window_layers": cfg.n_layer,
                "layer_types": ["full_attention"] * cfg.n_layer}
    return {**common, "architectures": ["LlamaForCausalLM"], "model_type": "llama", "mlp_bias": False,
            "pretraining_tp": 1}


def export_hf(model: Transformer, out_dir: str | os.PathLike[str], dtype: torch.dtype = torch.float32) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (+ ``generation_config.json``) for transformers."""
    from safetensors.torch import save_file

    config = hf_config(model.config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state: dict[str, torch.Tensor] = {}
    for name, t in model.state_dict().items():
        if name == "lm_head.weight":
            if model.config.tie_embeddings:
                continue
            state[name] = t
        else:
            state["model." + name] = t
    state = {k: v.detach().to(dtype).contiguous().cpu() for k, v in state.items()}
    config["torch_dtype"] = config["dtype"] = str(dtype).replace("torch.", "")
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps({"_from_model_config": True}, indent=2) + "\n")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ckpt", help="model folder, checkpoint folder or run folder")
    parser.add_argument("out", help="output folder for the Hugging Face model")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])


def run(args: argparse.Namespace) -> int:
    model = Transformer.from_pretrained(resolve_ckpt(args.ckpt, "CKPT"))
    try:
        out = export_hf(model, args.out, getattr(torch, args.dtype))
    except ExportError as e:
        print(f"omnitok export hf: cannot export: {e}")
        return 2
    arch = hf_config(model.config)["architectures"][0]
    print(f"wrote {arch} to {out} (load with transformers.AutoModelForCausalLM.from_pretrained)")
    return 0
