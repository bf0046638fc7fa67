"""DiffusionModel: a text encoder + a denoiser (U-Net or DiT) + the scheduler config it was trained with, as a folder.

    model = DiffusionModel(config)                       # config: a plain dict, saved as config.json
    tokens, mask, pooled = model.encode_text(ids, lengths)
    out = model.denoise(x_t, t, tokens, mask, pooled)    # (B, C, H, W): epsilon, v or x0 (config["scheduler"])

Config keys: ``sample`` (``{"channels", "size"}``: what the denoiser sees), ``denoiser`` (``{"name": "unet"|"dit",
...constructor arguments}``), ``text`` (``{"vocab_size", "dim", "layers", "heads", "max_len"}``: BPE ids through a
:class:`TextEncoder` trained with the denoiser; or ``{"kind": "embedding", "embed_dim", "dim"}``: a frozen encoder's
vectors, e.g. CLIP's), ``scheduler`` (a
:class:`SchedulerConfig` dict) and ``latent`` (``None`` in pixel space; else ``{"scale", "shift"}``: the denoiser sees
``(z - shift) * scale``, unit variance over the training latents, LDM sec. 4.3.2 / appendix G).

A folder holds ``config.json`` + ``model.safetensors``. A training checkpoint keeps the trained weights under
``model.*`` and their exponential moving average under ``ema.*``; :meth:`from_pretrained` loads the EMA.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from omnitok.diffusion.ddpm import DDPMScheduler
from omnitok.diffusion.dit import DiT
from omnitok.diffusion.schedule import SchedulerConfig
from omnitok.diffusion.text import EmbeddingConditioner, TextEncoder
from omnitok.diffusion.unet import UNet

__all__ = ["DENOISERS", "DiffusionModel"]

DENOISERS: dict[str, type[nn.Module]] = {"unet": UNet, "dit": DiT}
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"


class DiffusionModel(nn.Module):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        for key in ("sample", "denoiser", "text", "scheduler"):
            if key not in config:
                raise ValueError(f"diffusion model config: missing {key!r} (have {sorted(config)})")
        self.config = json.loads(json.dumps(config))  # a plain copy that is known to serialise
        self.scheduler_config = SchedulerConfig.from_dict(config["scheduler"])
        DDPMScheduler(self.scheduler_config)  # refuse invalid combinations now, not at the first sample
        text = dict(config["text"])
        kind = text.get("kind", "bpe")
        if kind == "bpe":
            self.text: TextEncoder | EmbeddingConditioner = TextEncoder(
                int(text["vocab_size"]), int(text.get("dim", 64)), int(text.get("layers", 2)),
                int(text.get("heads", 4)), int(text.get("max_len", 16)))
        elif kind == "embedding":
            self.text = EmbeddingConditioner(int(text["embed_dim"]), int(text.get("dim", 64)))
        else:
            raise ValueError(f"text kind must be 'bpe' (ids, trained with the denoiser) or 'embedding' (a frozen "
                             f"encoder's vectors), got {kind!r}")
        den = dict(config["denoiser"])
        name = den.pop("name", "unet")
        if name not in DENOISERS:
            raise ValueError(f"denoiser name must be one of {sorted(DENOISERS)}, got {name!r}")
        den.setdefault("context_dim", self.text.dim)
        if name == "dit":
            den.setdefault("input_size", int(config["sample"]["size"]))
        self.denoiser = DENOISERS[name](in_channels=int(config["sample"]["channels"]), **den)
        self.weights_sha256: str | None = None

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        s = self.config["sample"]
        return int(s["channels"]), int(s["size"]), int(s["size"])

    @property
    def latent(self) -> dict[str, float] | None:
        return self.config.get("latent")

    def encode_text(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """ids (B, L) (or embeddings (B, 1, E)), lengths (B,) (0 = the unconditional caption) -> tokens, mask,
        pooled."""
        return self.text(ids, lengths)

    def denoise(self, x: Tensor, t: Tensor, tokens: Tensor, mask: Tensor, pooled: Tensor) -> Tensor:
        """x (B, C, H, W) at timesteps t (B,) -> the model output (B, C, H, W)."""
        return self.denoiser(x, t.float(), tokens, mask, pooled)

    def forward(self, x: Tensor, t: Tensor, ids: Tensor, lengths: Tensor) -> Tensor:
        return self.denoise(x, t, *self.encode_text(ids, lengths))

    # ----- folders ------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> Path:
        from omnitok._io import sha256_file, write_json_atomic

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / (WEIGHTS_NAME + ".tmp")
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}, str(tmp),
                  metadata={"format": "pt"})
        digest = sha256_file(tmp)
        os.replace(tmp, directory / WEIGHTS_NAME)
        write_json_atomic(directory / CONFIG_NAME, {"model_class": "DiffusionModel", "diffusion": self.config,
                                                    "weights_sha256": digest, **(extra or {})})
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], map_location: str | torch.device = "cpu",
                        verify: bool = True) -> DiffusionModel:
        """A model folder or a training checkpoint folder (its ``ema.*`` weights)."""
        from omnitok._io import CheckpointError, read_json, sha256_file

        directory = Path(directory)
        cfg = read_json(directory / CONFIG_NAME)
        if not isinstance(cfg, dict) or cfg.get("model_class") != "DiffusionModel" or "diffusion" not in cfg:
            raise CheckpointError(f"{directory / CONFIG_NAME}: not a diffusion model folder (no model_class "
                                  "DiffusionModel / diffusion section)")
        path = directory / WEIGHTS_NAME
        if verify and isinstance(cfg.get("weights_sha256"), str) and sha256_file(path) != cfg["weights_sha256"]:
            raise CheckpointError(f"{path}: sha256 differs from the one recorded in config.json (damaged file)")
        model = cls(cfg["diffusion"])
        state = load_file(str(path), device=str(map_location))
        if any(k.startswith("ema.") for k in state):
            state = {k[4:]: v for k, v in state.items() if k.startswith("ema.")}
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise CheckpointError(f"{path}: weights disagree with config.json ({' '.join(str(e).split())[:300]})") \
                from e
        model.weights_sha256 = cfg.get("weights_sha256")
        return model.to(map_location).eval()
