"""omnitok.model: the decoder-only transformer over integer ids, its config and presets, a static KV cache."""

from omnitok.model.config import PRESETS, ModelConfig, load_preset
from omnitok.model.kv_cache import StaticKVCache
from omnitok.model.transformer import Transformer, lm_loss

__all__ = ["PRESETS", "ModelConfig", "StaticKVCache", "Transformer", "lm_loss", "load_preset"]
