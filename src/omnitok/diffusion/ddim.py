"""DDIM (Song et al., arXiv 2010.02502, eq. 12): ``x_prev = alpha_prev x0^ + sqrt(sigma_prev^2 - c^2) eps^ + c z`` with
``c = eta * sqrt(posterior variance)``. ``eta = 0``: deterministic (the probability-flow ODE, first order);
``eta = 1``: the DDPM posterior variance."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from omnitok.diffusion.schedule import Scheduler, SchedulerConfig, SchedulerOutput

__all__ = ["DDIMScheduler"]


class DDIMScheduler(Scheduler):
    name = "ddim"

    def __init__(self, config: SchedulerConfig | None = None, eta: float = 0.0, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        if not 0.0 <= float(eta) <= 1.0:
            raise ValueError(f"ddim: eta must be in [0, 1] (0 deterministic, 1 DDPM-like), got {eta}")
        self.eta = float(eta)

    def step(self, model_output: Tensor, t: Tensor | int, x: Tensor,
             generator: torch.Generator | None = None) -> SchedulerOutput:
        prev = self.previous_timestep(t)
        x0, eps = self.predict(model_output, t, x)
        a_prev, s_prev = self.alpha_sigma(prev)
        c = self.eta * self.posterior(t, prev)[2].sqrt()
        out = self._bcast(a_prev, x) * x0 + self._bcast((s_prev**2 - c**2).clamp_min(0).sqrt(), x) * eps
        if self.eta > 0 and int(prev) >= 0:
            out = out + self._bcast(c, x) * self._noise(x, generator)
        return SchedulerOutput(out, x0)
