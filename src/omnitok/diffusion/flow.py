"""Flow-matching Euler sampler: integrate the straight-path ODE ``dx/ds = eps - x0`` in flow time s (Lipman et al.,
arXiv 2210.02747; Liu et al., arXiv 2209.03003) with n Euler steps uniform in s.

Any Gaussian path ``x_t = alpha_t x0 + sigma_t eps`` is the straight path after rescaling:
``x_t / (alpha_t + sigma_t) = (1 - s) x0 + s eps`` with ``s = sigma_t / (alpha_t + sigma_t)``, so one sampler serves
models trained on the linear, cosine or flow schedule (for the flow schedule the rescaling is 1). The timesteps are
fractional (``t`` where s(t) is uniform); the model sees them through its sinusoidal embedding and the path's alpha,
sigma are interpolated in s between integer timesteps. (At identical timesteps an Euler step in s equals a DDIM step
with eta = 0: both are first-order steps of the same ODE in coordinates where it is linear in the prediction; what
differs here is the grid, uniform in s rather than in t.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from omnitok.diffusion.schedule import Scheduler, SchedulerOutput, _interp

__all__ = ["FlowEulerScheduler"]


class FlowEulerScheduler(Scheduler):
    name = "euler"

    def set_timesteps(self, num_inference_steps: int) -> Tensor:
        """n fractional timesteps whose flow times are uniform from s(T-1) down to s(T-1)/n (the last step goes to 0)."""
        n = int(num_inference_steps)
        if n < 1:
            raise ValueError(f"euler: steps must be >= 1, got {n}")
        s_max = self._s_grid[-1]
        s = s_max * (1.0 - torch.arange(n, dtype=torch.float64) / n)  # (n,) decreasing
        self.timesteps = _interp(s, self._s_grid, self._t_grid)  # s(t) is increasing, so invert by interpolation
        self.timesteps[0] = float(self.num_train_timesteps - 1)
        self.num_inference_steps = n
        return self.timesteps

    def step(self, model_output: Tensor, t: Tensor | float, x: Tensor,
             generator: torch.Generator | None = None) -> SchedulerOutput:
        t = torch.as_tensor(t, dtype=torch.float64)
        prev = self.previous_timestep(t)
        x0, eps = self.predict(model_output, t, x)
        a, s = self.alpha_sigma(t)
        a_p, s_p = self.alpha_sigma(prev.double())
        flow_t, flow_p = s / (a + s), s_p / (a_p + s_p)
        z = x / self._bcast(a + s, x)  # the straight-path coordinate (1 - s) x0 + s eps
        z = z + self._bcast(flow_p - flow_t, x) * (eps - x0)  # Euler: dz/ds = eps - x0
        return SchedulerOutput(z * self._bcast(a_p + s_p, x), x0)
