"""The transformer's configuration and its named presets (``src/omnitok/configs/lm/<name>.yaml``).

A preset file has two sections, ``model:`` (fields of :class:`ModelConfig`) and ``train:`` (read by
``omnitok.train.lm``). Sizes ``B`` / ``L`` / ``XL`` are LlamaGen's (arXiv 2406.06525): 12 x 768, 24 x 1024,
36 x 1280 with 12 / 16 / 20 heads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from omnitok._overrides import load_yaml, split_override
from omnitok._validate import check_fields
from omnitok.nn.swiglu import swiglu_hidden_dim

__all__ = ["PRESETS", "ModelConfig", "apply_overrides", "load_preset"]

PRESETS = ("debug", "tiny", "small", "B", "L", "XL")


@dataclass
class ModelConfig:
    """Decoder-only Llama-style transformer over integer ids (no modality knowledge)."""

    vocab_size: int = 512
    n_layer: int = 2
    dim: int = 64
    n_head: int = 4
    n_kv_head: int | None = None  # None = n_head (plain multi-head attention); fewer = GQA
    head_dim: int | None = None  # None = dim // n_head
    ffn_hidden: int | None = None  # None = 8/3 * dim rounded up to ffn_multiple_of
    ffn_multiple_of: int = 256
    max_seq_len: int = 2048
    rope_theta: float = 10000.0
    rope_axes: int = 1  # 1 = ordinary RoPE; 2 / 3 = M-RoPE over (row, col) / (t, row, col) positions
    rope_sections: list[int] | None = None  # frequencies per axis (sum = head_dim / 2); None = even split
    norm_eps: float = 1e-6
    qk_norm: bool = False
    tie_embeddings: bool = False
    z_loss: float = 0.0  # PaLM's auxiliary z-loss coefficient (arXiv 2204.02311), e.g. 1e-4
    init_std: float = 0.02
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes carried into config.json

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layer", "dim", "n_head", "n_kv_head", "head_dim", "ffn_hidden", "max_seq_len",
                     "rope_axes", "ffn_multiple_of"):
            v = getattr(self, name)
            if v is not None and int(v) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {v}")
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.head_dim is None:
            if self.dim % self.n_head:
                raise ValueError(f"dim ({self.dim}) must be divisible by n_head ({self.n_head}) or set head_dim")
            self.head_dim = self.dim // self.n_head
        if self.ffn_hidden is None:
            self.ffn_hidden = swiglu_hidden_dim(self.dim, self.ffn_multiple_of)
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head})")
        for name in ("rope_theta", "norm_eps", "init_std"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"ModelConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.rope_sections is not None:
            self.rope_sections = [int(s) for s in self.rope_sections]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "ModelConfig") -> ModelConfig:
        """Build from a mapping whose keys and value types are checked first (``where`` names its source in
        the error: a config.json path, a preset)."""
        check_fields(cls, d, where, ignore=("model_class", "format_version", "weights_sha256"))
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None

    def num_params(self, include_embeddings: bool = True) -> int:
        """Parameter count computed from the shapes (matches ``Transformer.num_params``)."""
        hd, h, hk, d = self.head_dim, self.n_head, self.n_kv_head, self.dim
        attn = d * h * hd + 2 * d * hk * hd + h * hd * d + (2 * hd if self.qk_norm else 0)
        block = attn + 3 * d * self.ffn_hidden + 2 * d
        n = self.n_layer * block + d
        if include_embeddings:
            n += self.vocab_size * d * (1 if self.tie_embeddings else 2)
        return n


def load_preset(name: str) -> dict[str, dict[str, Any]]:
    """Read ``configs/lm/<name>.yaml`` -> ``{"model": {...}, "train": {...}}``."""
    path = resources.files("omnitok").joinpath("configs", "lm", f"{name}.yaml")
    if not path.is_file():
        available = sorted(p.name[:-5] for p in resources.files("omnitok").joinpath("configs", "lm").iterdir()
                           if p.name.endswith(".yaml"))
        raise ValueError(f"unknown LM preset {name!r}; available: {available}")
    data = load_yaml(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"preset {path} must be a mapping with 'model' and 'train' sections")
    return {"model": dict(data.get("model") or {}), "train": dict(data.get("train") or {})}


def apply_overrides(preset: dict[str, dict[str, Any]], overrides: list[str],
                    train_keys: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """Apply ``section.key=value`` or bare ``key=value`` overrides (bare keys go to the section that owns them)."""
    model_keys = {f.name for f in dataclasses.fields(ModelConfig)}
    train_keys = train_keys or set(preset.get("train", {}))
    out = {"model": dict(preset.get("model", {})), "train": dict(preset.get("train", {}))}
    for item in overrides:
        parts, value = split_override(item)  # the typed values of every preset: train.lr=3e-4 is a float
        key = ".".join(parts)
        if "." in key:
            section, key = key.split(".", 1)
            if section not in out:
                raise ValueError(f"override {item!r}: section must be 'model' or 'train'")
        elif key in model_keys:
            section = "model"
        elif key in train_keys:
            section = "train"
        else:
            raise ValueError(f"override {item!r}: unknown key {key!r}; model keys: {sorted(model_keys)}; "
                             f"train keys: {sorted(train_keys)}")
        if section == "model" and key not in model_keys:
            raise ValueError(f"override {item!r}: unknown model key {key!r}; expected one of {sorted(model_keys)}")
        if section == "train" and key not in train_keys:
            raise ValueError(f"override {item!r}: unknown train key {key!r}; expected one of {sorted(train_keys)}")
        out[section][key] = value
    return out
