"""The one builder: a preset dict (from configs/codec/NAME.yaml) -> a codec with its quantizer.

A preset looks like::

    type: image            # image | video (audio presets are built by omnitok.train.audio_codec)
    model: {in_channels: 3, channels: 64, channel_mult: [1, 2, 2, 2], num_res_blocks: 1, z_channels: 64}
    quantizer: {name: vq, dim: 16, codebook_size: 1024, kmeans_init: true}

``quantizer.name`` picks the class (vq, rvq, fsq, lfq, bsq, ...); every other key is passed to its
constructor unchanged. Components never read configs themselves.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml

from omnitok.quantizers.base import Quantizer

__all__ = [
    "QUANTIZERS",
    "build_codec",
    "build_quantizer",
    "load_preset",
    "preset_path",
    "register_quantizer",
]

#: quantizer name -> (module, class name); imported on first use
QUANTIZERS: dict[str, tuple[str, str]] = {
    "vq": ("omnitok.quantizers.vq", "VectorQuantizer"),
    "rvq": ("omnitok.quantizers.rvq", "ResidualVQ"),
    "fsq": ("omnitok.quantizers.fsq", "FSQ"),
    "lfq": ("omnitok.quantizers.lfq", "LFQ"),
    "bsq": ("omnitok.quantizers.bsq", "BSQ"),
    "pq": ("omnitok.quantizers.pq", "ProductQuantizer"),
    "gumbel": ("omnitok.quantizers.gumbel", "GumbelQuantizer"),
}
_EXTRA: dict[str, type[Quantizer]] = {}

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "codec"


def register_quantizer(name: str, cls: type[Quantizer]) -> None:
    """Make ``cls`` available to presets as ``quantizer: {name: NAME, ...}``."""
    _EXTRA[name] = cls


def quantizer_class(name: str) -> type[Quantizer]:
    if name in _EXTRA:
        return _EXTRA[name]
    if name not in QUANTIZERS:
        raise ValueError(f"unknown quantizer {name!r}; expected one of {sorted(set(QUANTIZERS) | set(_EXTRA))}")
    module, cls_name = QUANTIZERS[name]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise ValueError(f"quantizer {name!r} is not available: {module} is missing ({e})") from e
    return getattr(mod, cls_name)


def build_quantizer(name: str, **kwargs: Any) -> Quantizer:
    """Instantiate quantizer ``name`` with constructor ``kwargs`` (a clear error for bad keywords)."""
    cls = quantizer_class(name)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ValueError(f"quantizer {name!r} ({cls.__name__}): bad arguments {sorted(kwargs)}: {e}") from e


def preset_path(name: str) -> Path:
    """configs/codec/NAME.yaml, or NAME itself when it is a path to a YAML file."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(q.stem for q in CONFIG_DIR.glob("*.yaml"))
        raise ValueError(f"unknown codec preset {name!r} (no {path}); known presets: {known}")
    return path


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text) if text != "" else ""


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (e.g. train.steps=100)")
        key, value = item.split("=", 1)
        node = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = _parse_value(value)
    return cfg


def load_preset(name: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read configs/codec/NAME.yaml and apply key=value overrides."""
    path = preset_path(name)
    cfg = yaml.safe_load(path.read_text()) or {}
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ValueError(f"{path}: a codec preset must be a mapping with a 'type' key (image, video or audio)")
    cfg.setdefault("name", path.stem)
    return apply_overrides(cfg, list(overrides or []))


def build_codec(preset: dict[str, Any]):
    """Preset dict -> ImageCodec or VideoCodec (its quantizer built by name)."""
    kind = preset.get("type")
    model = dict(preset.get("model") or {})
    qcfg = dict(preset.get("quantizer") or {"name": "vq"})
    qname = qcfg.pop("name", "vq")
    if kind == "image":
        from omnitok.codecs.image import ImageCodec

        return ImageCodec(**model, quantizer=qname, quantizer_kwargs=qcfg)
    if kind == "video":
        from omnitok.codecs.video import VideoCodec

        return VideoCodec(**model, quantizer=qname, quantizer_kwargs=qcfg)
    raise ValueError(f"build_codec: preset type must be 'image' or 'video', got {kind!r}")
