"""DDPM ancestral sampling (Ho et al., arXiv 2006.11239, Alg. 2): draw x_prev from the posterior
q(x_prev | x_t, x0 = predicted x0), with the posterior ("fixed small") variance. With fewer steps than the training
timesteps the posterior between the chosen timesteps is used (the same formula, ``Scheduler.posterior``)."""

from __future__ import annotations

import torch
from torch import Tensor

from omnitok.diffusion.schedule import Scheduler, SchedulerOutput

__all__ = ["DDPMScheduler"]


class DDPMScheduler(Scheduler):
    name = "ddpm"

    def step(self, model_output: Tensor, t: Tensor | int, x: Tensor,
             generator: torch.Generator | None = None) -> SchedulerOutput:
        prev = self.previous_timestep(t)
        x0, _ = self.predict(model_output, t, x)
        c_x0, c_xt, var = self.posterior(t, prev)
        mean = self._bcast(c_x0, x) * x0 + self._bcast(c_xt, x) * x
        if int(prev) < 0:  # the last step returns the posterior mean (variance 0)
            return SchedulerOutput(mean, x0)
        return SchedulerOutput(mean + self._bcast(var.sqrt(), x) * self._noise(x, generator), x0)
