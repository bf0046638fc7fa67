"""Transfusion (Zhou et al., arXiv 2408.11039): one transformer, next-token loss on text ids and a diffusion loss on
continuous image patches in the same sequence.

An image is the codec's continuous pre-quantization latents ``(C, h, w)``, cut into ``patch_size``-square patches
(``N = (h / p)^2`` of ``C p^2`` numbers each) and placed between the image's begin and end markers. Each image position
carries one fixed id (``patch_id``, whose embedding acts as a "this is a patch" type vector) plus, through the
transformer's additive ``inputs_embeds`` path, ``patch_in(x_t) + time_embed(t) + patch_pos``. The image block is one
bidirectional segment (``segment_ids``: every patch sees every other patch of its image), text stays causal, and the
final hidden state of each image position goes through ``patch_out`` to the diffusion model's output (epsilon, v or
x0, as the scheduler config says) for that patch.

    model = TransfusionModel(ModelConfig(...), TransfusionConfig(latent_channels=9, latent_size=8, patch_size=2))
    out = model(idx, image_mask, patches_t, t, text_mask=targets != -100)
    loss = transfusion_loss(out.logits, targets[targets != -100], out.image, target, lambda_diffusion=5.0)

The transformer still sees ids only; the patches arrive as an additive embedding, like a position embedding. What the
scheduler does (noising, targets, sampling steps) lives in ``omnitok.diffusion`` and is driven by the trainer and by
``omnitok.generation.hybrid``; this module imports ``nn`` and ``model`` only, and keeps the scheduler config as a
plain dict in its folder.

A folder holds ``config.json`` (``model_class: TransfusionModel``, ``transformer``: the ModelConfig, ``hybrid``: the
:class:`TransfusionConfig`) + ``model.safetensors``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omnitok.model.config import ModelConfig
from omnitok.model.transformer import Transformer, lm_loss
from omnitok.model.weights import check_state, untie_head
from omnitok.nn.timestep import TimestepEmbedding

__all__ = ["TransfusionConfig", "TransfusionLoss", "TransfusionModel", "TransfusionOutput", "transfusion_loss"]

CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"


@dataclass
class TransfusionConfig:
    """What the hybrid adds to the transformer: the latent grid, the patching, the diffusion head and its loss weight.

    ``scheduler`` is the :class:`omnitok.diffusion.SchedulerConfig` dict the model was trained with (every sampler
    shares it); ``latent`` the ``{"scale", "shift"}`` that bring the codec's latents to unit variance
    (``(z - shift) * scale``, as the latent diffusion models do)."""

    latent_channels: int = 4
    latent_size: int = 4
    patch_size: int = 2
    patch_id: int = 0  # the id at every image position (the patch content is added to its embedding)
    time_freq_dim: int = 128
    lambda_diffusion: float = 5.0  # the paper's lambda (sec. 4.1)
    scheduler: dict[str, Any] = field(default_factory=dict)
    latent: dict[str, float] = field(default_factory=lambda: {"scale": 1.0, "shift": 0.0})

    def __post_init__(self) -> None:
        for name in ("latent_channels", "latent_size", "patch_size", "time_freq_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TransfusionConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.latent_size % self.patch_size:
            raise ValueError(f"TransfusionConfig: latent_size {self.latent_size} is not a multiple of patch_size "
                             f"{self.patch_size}")
        if not float(self.lambda_diffusion) >= 0:
            raise ValueError(f"TransfusionConfig.lambda_diffusion must be >= 0, got {self.lambda_diffusion}")

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.latent_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid**2

    @property
    def patch_dim(self) -> int:
        return self.latent_channels * self.patch_size**2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "TransfusionConfig") -> TransfusionConfig:
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"{where}: unknown key(s) {bad}; known: {sorted(known)}")
        return cls(**d)


class TransfusionOutput(NamedTuple):
    logits: Tensor | None  # (Nt, V) at the positions of ``text_mask`` (row-major), or None
    image: Tensor  # (B, N, patch_dim): the diffusion output for every patch of each row's image
    hidden: Tensor  # (B, T, C) final-normed hidden states


class TransfusionLoss(NamedTuple):
    total: Tensor  # lm + lambda * diffusion
    lm: Tensor  # mean next-token cross-entropy over the text targets
    diffusion: Tensor  # mean squared error over every number of every image patch


def transfusion_loss(logits: Tensor, targets: Tensor, pred: Tensor, target: Tensor,
                     lambda_diffusion: float) -> TransfusionLoss:
    """logits (Nt, V) with targets (Nt,) (text positions only); pred, target (B, N, P) -> the paper's eq. 4:
    ``L = L_LM + lambda * L_DDPM``."""
    lm, _ = lm_loss(logits, targets)
    diffusion = F.mse_loss(pred.float(), target.float())
    return TransfusionLoss(lm + float(lambda_diffusion) * diffusion, lm, diffusion)


class TransfusionModel(nn.Module):
    """The unified transformer plus the patch projections in and out and a timestep embedding."""

    def __init__(self, model_config: ModelConfig, config: TransfusionConfig) -> None:
        super().__init__()
        if not 0 <= config.patch_id < model_config.vocab_size:
            raise ValueError(f"TransfusionConfig.patch_id {config.patch_id} is outside the vocabulary "
                             f"[0, {model_config.vocab_size})")
        self.config = config
        self.transformer = Transformer(model_config)
        dim = model_config.dim
        self.patch_in = nn.Linear(config.patch_dim, dim)
        self.time_embed = TimestepEmbedding(dim, config.time_freq_dim)
        self.patch_pos = nn.Parameter(torch.randn(config.num_patches, dim) * model_config.init_std)
        self.patch_out = nn.Linear(dim, config.patch_dim)
        nn.init.zeros_(self.patch_out.weight)  # the first prediction is 0 (as DiT's zero-initialised final layer)
        nn.init.zeros_(self.patch_out.bias)

    @property
    def model_config(self) -> ModelConfig:
        return self.transformer.config

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ----- patches ----------------------------------------------------------------------------------------------
    def patchify(self, z: Tensor) -> Tensor:
        """latents (B, C, h, w) -> patches (B, N, C p^2), row-major over the (h/p, w/p) grid."""
        c, p, g = self.config.latent_channels, self.config.patch_size, self.config.grid
        B = z.shape[0]
        if tuple(z.shape[1:]) != (c, g * p, g * p):
            raise ValueError(f"latents must be (B, {c}, {g * p}, {g * p}), got {tuple(z.shape)}")
        z = z.reshape(B, c, g, p, g, p).permute(0, 2, 4, 1, 3, 5)  # (B, g, g, C, p, p)
        return z.reshape(B, g * g, c * p * p)

    def unpatchify(self, x: Tensor) -> Tensor:
        """patches (B, N, C p^2) -> latents (B, C, h, w)."""
        c, p, g = self.config.latent_channels, self.config.patch_size, self.config.grid
        B = x.shape[0]
        x = x.reshape(B, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5)  # (B, C, g, p, g, p)
        return x.reshape(B, c, g * p, g * p)

    def embed_patches(self, patches: Tensor, t: Tensor) -> Tensor:
        """patches (B, N, P) at timesteps t (B,) -> (B, N, C): ``patch_in(x_t) + time_embed(t) + patch_pos``."""
        return self.patch_in(patches) + self.time_embed(t)[:, None, :] + self.patch_pos[None]

    # ----- forward ----------------------------------------------------------------------------------------------
    def forward(self, idx: Tensor, image_mask: Tensor, patches: Tensor, t: Tensor, *,
                text_mask: Tensor | None = None, position_ids: Tensor | None = None,
                document_ids: Tensor | None = None, segment_ids: Tensor | None = None,
                attention_mask: Tensor | None = None, kv_cache: Any = None) -> TransfusionOutput:
        """idx (B, T) ids; image_mask (B, T) bool, exactly N = ``num_patches`` True per row (the image positions,
        in patch order); patches (B, N, P) noisy latents at timesteps t (B,).

        segment_ids default: the image positions form one bidirectional segment (0), the rest is causal (-1).
        text_mask (B, T) bool: where to compute next-token logits. With ``kv_cache`` the call covers the T new
        tokens (the cache's rules, :class:`omnitok.model.kv_cache.StaticKVCache`)."""
        B, T = idx.shape
        N = self.config.num_patches
        if image_mask.shape != (B, T) or image_mask.dtype != torch.bool:
            raise ValueError(f"image_mask must be (B, T) = {(B, T)} bool, got {tuple(image_mask.shape)} "
                             f"{image_mask.dtype}")
        if patches.shape != (B, N, self.config.patch_dim):
            raise ValueError(f"patches must be (B, N, P) = {(B, N, self.config.patch_dim)}, got {tuple(patches.shape)}")
        counts = image_mask.sum(1)
        if bool((counts != N).any()):
            raise ValueError(f"image_mask must mark exactly {N} positions per row, got {counts.tolist()}")
        emb = self.embed_patches(patches, t)  # (B, N, C)
        inputs = torch.zeros(B, T, emb.shape[-1], dtype=emb.dtype, device=emb.device)
        inputs[image_mask] = emb.reshape(B * N, -1)
        if segment_ids is None:
            segment_ids = torch.where(image_mask, 0, -1)
        hidden, _ = self.transformer(idx, position_ids=position_ids, document_ids=document_ids,
                                     segment_ids=segment_ids, attention_mask=attention_mask, kv_cache=kv_cache,
                                     inputs_embeds=inputs, return_hidden=True)  # (B, T, C)
        image = self.patch_out(hidden[image_mask]).view(B, N, -1)  # (B, N, P)
        logits = self.transformer.lm_head(hidden[text_mask]) if text_mask is not None else None  # (Nt, V)
        return TransfusionOutput(logits, image, hidden)

    # ----- folders ----------------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> Path:
        """``model.safetensors`` (tied head stored once) + ``config.json`` with the weights' sha256."""
        from safetensors.torch import save_file

        from omnitok._io import fsync_replace, sha256_file, write_json_atomic

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / (WEIGHTS_NAME + ".tmp")
        save_file(self.state_for_saving(), str(tmp), metadata={"format": "pt", "model_class": "TransfusionModel"})
        digest = sha256_file(tmp)
        fsync_replace(tmp, directory / WEIGHTS_NAME)
        write_json_atomic(directory / CONFIG_NAME, {
            "model_class": "TransfusionModel", "format_version": 1, "transformer": self.model_config.to_dict(),
            "hybrid": self.config.to_dict(), "weights_sha256": digest, **(extra or {})})
        return directory

    def state_for_saving(self) -> dict[str, Tensor]:
        """The state dict as stored: contiguous CPU tensors, a tied ``lm_head`` left out (it is the embedding)."""
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        if self.model_config.tie_embeddings:
            state.pop("transformer.lm_head.weight", None)
        return state

    def load_saved_state(self, state: dict[str, Tensor], where: str) -> None:
        """Load a state written by :meth:`state_for_saving`; a name or shape mismatch is a CheckpointError."""
        state = dict(state)
        if self.model_config.tie_embeddings:
            untie_head(state, "transformer.")
        check_state(self, state, where, "its config")
        self.load_state_dict(state)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], map_location: str | torch.device = "cpu",
                        verify: bool = True) -> TransfusionModel:
        """Load a folder written by :meth:`save_pretrained` (checked: config types, names, shapes, sha256)."""
        from omnitok._io import CheckpointError, load_safetensors, read_json, sha256_file

        directory = Path(directory)
        cfg_path, w_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        if not cfg_path.is_file() or not w_path.is_file():
            raise CheckpointError(f"{directory}: a Transfusion model folder holds {CONFIG_NAME} and {WEIGHTS_NAME}")
        raw = read_json(cfg_path)
        if not isinstance(raw, dict) or raw.get("model_class") != "TransfusionModel":
            raise CheckpointError(f"{cfg_path}: not a Transfusion model folder (model_class is "
                                  f"{raw.get('model_class') if isinstance(raw, dict) else None!r})")
        try:
            mcfg = ModelConfig.from_dict(raw["transformer"], where=str(cfg_path))
            hcfg = TransfusionConfig.from_dict(raw["hybrid"], where=str(cfg_path))
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"{cfg_path}: {e}") from e
        if verify and isinstance(raw.get("weights_sha256"), str) and sha256_file(w_path) != raw["weights_sha256"]:
            raise CheckpointError(f"{w_path}: sha256 differs from the one recorded in {cfg_path} (damaged or "
                                  "replaced file)")
        model = cls(mcfg, hcfg)
        model.load_saved_state(load_safetensors(w_path, map_location=str(map_location)), str(w_path))
        model.record = {k: v for k, v in raw.items() if k not in ("transformer", "hybrid")}
        return model.to(map_location).eval()

    #: what the folder's config.json records beside the two configs (training figures, data), after loading
    record: dict[str, Any]
