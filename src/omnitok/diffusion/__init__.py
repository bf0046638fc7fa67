"""Diffusion beside next-token prediction: noise schedulers (one per file, one interface), denoisers (U-Net, DiT),
a text encoder, and the model folder (:class:`DiffusionModel`). Sampling with guidance: ``omnitok.generation.diffusion``.

    from omnitok.diffusion import SchedulerConfig, make_scheduler
    config = SchedulerConfig(schedule="cosine", prediction_type="v")
    sched = make_scheduler("ddim", config, eta=0.0)      # or "ddpm", "euler": same config, same model
    for t in sched.set_timesteps(20):
        x = sched.step(model(x, t), t, x).prev_sample
"""

from __future__ import annotations

from typing import Any

from omnitok.diffusion.ddim import DDIMScheduler
from omnitok.diffusion.ddpm import DDPMScheduler
from omnitok.diffusion.dit import DiT
from omnitok.diffusion.flow import FlowEulerScheduler
from omnitok.diffusion.model import DiffusionModel
from omnitok.diffusion.schedule import (
    PREDICTION_TYPES,
    SCHEDULES,
    Scheduler,
    SchedulerConfig,
    SchedulerOutput,
)
from omnitok.diffusion.text import EmbeddingConditioner, TextEncoder
from omnitok.diffusion.unet import UNet

__all__ = ["PREDICTION_TYPES", "SCHEDULERS", "SCHEDULES", "DDIMScheduler", "DDPMScheduler", "DiT", "DiffusionModel",
           "EmbeddingConditioner", "FlowEulerScheduler", "Scheduler", "SchedulerConfig", "SchedulerOutput",
           "TextEncoder", "UNet", "make_scheduler"]

SCHEDULERS: dict[str, type[Scheduler]] = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler, "euler": FlowEulerScheduler}


def make_scheduler(name: str, config: SchedulerConfig | dict[str, Any] | None = None, **kwargs: Any) -> Scheduler:
    """A sampler by name (``ddpm``, ``ddim``, ``euler``) over the model's shared config; kwargs: e.g. ``eta``."""
    if name not in SCHEDULERS:
        raise ValueError(f"sampler must be one of {sorted(SCHEDULERS)}, got {name!r}")
    if not isinstance(config, SchedulerConfig):
        config = SchedulerConfig.from_dict(config)
    return SCHEDULERS[name](config, **kwargs)
