"""omnitok.model: the decoder-only transformer over integer ids, its config and presets, a static KV cache, and the
Transfusion hybrid built on it (continuous image patches beside the ids)."""

from omnitok.model.config import PRESETS, ModelConfig, load_preset
from omnitok.model.kv_cache import StaticKVCache
from omnitok.model.transformer import Transformer, lm_loss
from omnitok.model.transfusion import TransfusionConfig, TransfusionModel, transfusion_loss

__all__ = ["PRESETS", "ModelConfig", "StaticKVCache", "Transformer", "TransfusionConfig", "TransfusionModel",
           "lm_loss", "load_preset", "transfusion_loss"]
