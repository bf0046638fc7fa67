"""The noise schedule every sampler shares, and the Scheduler interface.

A forward process ``x_t = alpha_t x0 + sigma_t eps`` at the integer training timesteps ``t = 0 .. T-1``
(``t = -1`` is the clean sample: alpha = 1, sigma = 0). One :class:`SchedulerConfig` fixes the path and what the
model predicts, so a model trained once samples with DDPM, DDIM or flow-matching Euler (``ddpm.py``, ``ddim.py``,
``flow.py``); each takes the config plus its own sampling knobs (DDIM's ``eta``).

Paths (``schedule``):

* ``linear``: betas from ``beta_start`` to ``beta_end`` (DDPM, Ho et al., arXiv 2006.11239), ``alpha_t^2 = prod(1 - beta)``,
  ``sigma_t^2 = 1 - alpha_t^2`` (variance preserving);
* ``cosine``: ``alpha_t^2 = f(t) / f(0)``, ``f(t) = cos^2((t/T + 0.008) / 1.008 * pi/2)``, betas clipped at 0.999
  (Nichol & Dhariwal, arXiv 2102.09672, eq. 17);
* ``flow``: the straight path of flow matching / rectified flow, ``alpha_t = 1 - s``, ``sigma_t = s``, ``s = (t+1)/T``
  (Lipman et al., arXiv 2210.02747; Liu et al., arXiv 2209.03003).

``zero_terminal_snr`` rescales a linear / cosine path so ``alpha_{T-1} = 0`` (Lin et al., arXiv 2305.08891, Alg. 1);
the flow path ends at pure noise by construction. At zero signal an epsilon prediction says nothing about x0, so
that combination is refused at construction.

Prediction types (``prediction_type``): ``epsilon`` (the noise), ``x0`` (the clean sample), ``v = alpha eps - sigma x0``
(Salimans & Ho, arXiv 2202.00512). For any path ``x0 = (alpha x - sigma v) / (alpha^2 + sigma^2)`` and
``eps = (sigma x + alpha v) / (alpha^2 + sigma^2)``.

Every sampler also uses one posterior, ``q(x_s | x_t, x0)`` for ``s < t`` on any Gaussian path (Kingma et al., VDM,
arXiv 2107.00630, eq. 30-33): with ``alpha_ts = alpha_t / alpha_s`` and ``sigma_ts^2 = sigma_t^2 - alpha_ts^2 sigma_s^2``,
mean ``= alpha_ts sigma_s^2 / sigma_t^2 x_t + alpha_s sigma_ts^2 / sigma_t^2 x0`` and
variance ``= sigma_ts^2 sigma_s^2 / sigma_t^2``; for consecutive timesteps of a linear / cosine path these are DDPM's
``mu~_t`` and ``beta~_t``.

Timesteps for n sampling steps are ``trailing`` (Lin et al., Table 2): ``round(T - i T / n) - 1``, so the first step is
always at ``T - 1``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = ["PREDICTION_TYPES", "SCHEDULES", "Scheduler", "SchedulerConfig", "SchedulerOutput"]

SCHEDULES = ("linear", "cosine", "flow")
PREDICTION_TYPES = ("epsilon", "v", "x0")


@dataclass(frozen=True)
class SchedulerConfig:
    """The forward process and the model's output type, shared by every sampler (saved with the model)."""

    num_train_timesteps: int = 1000
    schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction_type: str = "epsilon"
    zero_terminal_snr: bool = False
    clip_sample: float = 0.0  # > 0: clamp the predicted x0 to [-clip_sample, clip_sample] while sampling

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SchedulerConfig:
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"scheduler config: unknown key(s) {bad}; known: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SchedulerOutput(NamedTuple):
    prev_sample: Tensor  # x at the previous (less noisy) timestep, shaped like x
    pred_x0: Tensor  # the model's estimate of the clean sample, shaped like x


def _check(config: SchedulerConfig) -> None:
    c = config
    if c.schedule not in SCHEDULES:
        raise ValueError(f"scheduler: schedule must be one of {SCHEDULES}, got {c.schedule!r}")
    if c.prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"scheduler: prediction_type must be one of {PREDICTION_TYPES}, got {c.prediction_type!r}")
    if int(c.num_train_timesteps) < 2:
        raise ValueError(f"scheduler: num_train_timesteps must be >= 2, got {c.num_train_timesteps}")
    if c.schedule == "linear" and not 0.0 < c.beta_start < c.beta_end < 1.0:
        raise ValueError(f"scheduler: the linear schedule needs 0 < beta_start < beta_end < 1, got "
                         f"beta_start={c.beta_start}, beta_end={c.beta_end}")
    if c.clip_sample < 0:
        raise ValueError(f"scheduler: clip_sample must be >= 0 (0 = off), got {c.clip_sample}")
    zero_snr = c.schedule == "flow" or c.zero_terminal_snr
    if zero_snr and c.prediction_type == "epsilon":
        why = "the flow schedule ends" if c.schedule == "flow" else "zero_terminal_snr makes the schedule end"
        raise ValueError(f"scheduler: {why} at pure noise (alpha = 0 at t = T-1, zero terminal SNR), where an epsilon "
                         "prediction determines nothing about x0; use prediction_type 'v' or 'x0' "
                         "(Lin et al., arXiv 2305.08891, sec. 3.2)")


def _alphas_sigmas(c: SchedulerConfig) -> tuple[Tensor, Tensor]:
    """(T,) float64 alpha_t, sigma_t at the integer training timesteps."""
    T = int(c.num_train_timesteps)
    if c.schedule == "flow":
        s = torch.arange(1, T + 1, dtype=torch.float64) / T
        return 1.0 - s, s
    if c.schedule == "linear":
        betas = torch.linspace(c.beta_start, c.beta_end, T, dtype=torch.float64)
    else:  # cosine (Nichol & Dhariwal, eq. 17; betas clipped at 0.999 to avoid a singularity at t = T)
        f = lambda u: math.cos((u / T + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        betas = torch.tensor([min(1 - f(i + 1) / f(i), 0.999) for i in range(T)], dtype=torch.float64)
    alpha = torch.cumprod(1.0 - betas, 0).sqrt()
    if c.zero_terminal_snr:  # Lin et al., Alg. 1: shift and scale sqrt(alpha_bar) so it ends at 0, keeps alpha_0
        a0, aT = alpha[0].clone(), alpha[-1].clone()
        alpha = (alpha - aT) * a0 / (a0 - aT)
    return alpha, (1.0 - alpha**2).clamp_min(0).sqrt()


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation of (xp increasing, fp) at x (float64), clamped to the ends."""
    x = x.clamp(xp[0], xp[-1])
    i = torch.searchsorted(xp, x, right=True).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    w = (x - x0) / (x1 - x0)
    return f0 + w * (f1 - f0)


class Scheduler(ABC):
    """One interface for every sampler: ``set_timesteps(n)``, ``timesteps``, ``add_noise(x0, noise, t)``,
    ``step(model_output, t, x) -> SchedulerOutput(prev_sample, pred_x0)``; plus the training target.

    No step counter: ``step`` finds the previous timestep by looking ``t`` up in ``timesteps``.
    """

    name: str = ""

    def __init__(self, config: SchedulerConfig | None = None, **overrides: Any) -> None:
        config = config or SchedulerConfig()
        if overrides:
            config = SchedulerConfig.from_dict({**config.to_dict(), **overrides})
        _check(config)
        self.config = config
        self.num_train_timesteps = int(config.num_train_timesteps)
        self.alphas, self.sigmas = _alphas_sigmas(config)  # (T,) float64
        self.is_flow = config.schedule == "flow"
        # flow time s = sigma / (alpha + sigma) in [0, 1], on the grid t = -1 (clean, s = 0), 0, ..., T-1
        self._t_grid = torch.arange(-1, self.num_train_timesteps, dtype=torch.float64)
        self._s_grid = torch.cat([torch.zeros(1, dtype=torch.float64), self.sigmas / (self.alphas + self.sigmas)])
        self.timesteps: Tensor | None = None
        self.num_inference_steps: int | None = None

    # ----- the path ------------------------------------------------------------------------------------
    def alpha_sigma(self, t: Tensor | int | float) -> tuple[Tensor, Tensor]:
        """alpha_t, sigma_t (float64, shaped like t). Integer t indexes the table (-1 = clean); float t
        interpolates the flow time s = sigma / (alpha + sigma) linearly between integer timesteps."""
        t = torch.as_tensor(t)
        if not t.is_floating_point():
            ti = t.long().cpu()
            if int(ti.min()) < -1 or int(ti.max()) >= self.num_train_timesteps:
                raise ValueError(f"timestep out of range [-1, {self.num_train_timesteps - 1}]: {ti.tolist()}")
            a = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas])[ti + 1]
            s = torch.cat([torch.zeros(1, dtype=torch.float64), self.sigmas])[ti + 1]
            return a, s
        s = _interp(t.double().cpu(), self._t_grid, self._s_grid)
        return self._from_flow_time(s)

    def _from_flow_time(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """Flow time s -> (alpha, sigma) on this path: alpha + sigma = 1 (flow) or alpha^2 + sigma^2 = 1."""
        if self.is_flow:
            return 1.0 - s, s
        norm = ((1.0 - s) ** 2 + s**2).sqrt()
        return (1.0 - s) / norm, s / norm

    def flow_time(self, t: Tensor | int | float) -> Tensor:
        a, s = self.alpha_sigma(t)
        return s / (a + s)

    @staticmethod
    def _bcast(v: Tensor, x: Tensor) -> Tensor:
        """(B,) or () float64 -> broadcastable to x (B, ...) in x's dtype and device."""
        v = v.to(device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)
        return v.reshape(v.shape + (1,) * (x.dim() - v.dim())) if v.dim() else v

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor | int) -> Tensor:
        """q(x_t | x0): ``alpha_t x0 + sigma_t noise``; t (B,) or a scalar."""
        a, s = self.alpha_sigma(t)
        return self._bcast(a, x0) * x0 + self._bcast(s, x0) * noise

    def training_target(self, x0: Tensor, noise: Tensor, t: Tensor | int) -> Tensor:
        """What the model is trained to output at t: noise (epsilon), x0, or v = alpha noise - sigma x0."""
        p = self.config.prediction_type
        if p == "epsilon":
            return noise
        if p == "x0":
            return x0
        a, s = self.alpha_sigma(t)
        return self._bcast(a, x0) * noise - self._bcast(s, x0) * x0

    def predict(self, model_output: Tensor, t: Tensor | int | float, x: Tensor) -> tuple[Tensor, Tensor]:
        """model output at (x, t) -> (predicted x0, predicted eps), x0 clamped when ``clip_sample`` > 0."""
        a64, s64 = self.alpha_sigma(t)
        a, s = self._bcast(a64, x), self._bcast(s64, x)
        p = self.config.prediction_type
        if p == "epsilon":
            x0 = (x - s * model_output) / a
        elif p == "x0":
            x0 = model_output
        else:
            x0 = (a * x - s * model_output) / self._bcast(a64**2 + s64**2, x)
        if self.config.clip_sample > 0:
            x0 = x0.clamp(-self.config.clip_sample, self.config.clip_sample)
        elif p == "epsilon":
            return x0, model_output
        return x0, (x - a * x0) / s

    def posterior(self, t: Tensor | int | float, prev: Tensor | int | float) -> tuple[Tensor, Tensor, Tensor]:
        """q(x_prev | x_t, x0) = N(c_x0 x0 + c_xt x_t, var) for prev < t (prev = -1: clean) ->
        (c_x0, c_xt, var), float64 (see the module docstring)."""
        a_t, s_t = self.alpha_sigma(t)
        a_s, s_s = self.alpha_sigma(prev)
        a_ts = a_t / a_s
        var_ts = (s_t**2 - a_ts**2 * s_s**2).clamp_min(0)
        return a_s * var_ts / s_t**2, a_ts * s_s**2 / s_t**2, var_ts * s_s**2 / s_t**2

    # ----- sampling ------------------------------------------------------------------------------------
    def set_timesteps(self, num_inference_steps: int) -> Tensor:
        """Choose ``num_inference_steps`` decreasing timesteps (trailing spacing); returns and stores them."""
        n, T = int(num_inference_steps), self.num_train_timesteps
        if not 1 <= n <= T:
            raise ValueError(f"{self.name or 'scheduler'}: steps must be in [1, {T}] (the training timesteps), got {n}")
        self.timesteps = (T - torch.arange(n, dtype=torch.float64) * T / n).round().long() - 1
        self.num_inference_steps = n
        return self.timesteps

    def previous_timestep(self, t: Tensor | int | float) -> Tensor:
        """The timestep after ``t`` in ``timesteps`` (the next, less noisy one), or -1 (clean) after the last."""
        if self.timesteps is None:
            raise RuntimeError(f"{self.name or 'scheduler'}: call set_timesteps(n) before step()")
        ts = self.timesteps
        t = torch.as_tensor(t, dtype=ts.dtype).reshape(())
        hit = (ts == t).nonzero()
        if len(hit) == 0:
            raise ValueError(f"{self.name}: timestep {t.item()} is not one of the {len(ts)} set by set_timesteps")
        i = int(hit[0, 0])
        return ts[i + 1] if i + 1 < len(ts) else torch.tensor(-1 if not ts.is_floating_point() else -1.0,
                                                              dtype=ts.dtype)

    @abstractmethod
    def step(self, model_output: Tensor, t: Tensor | int | float, x: Tensor,
             generator: torch.Generator | None = None) -> SchedulerOutput:
        """One update from timestep t to the previous timestep: (prev sample, predicted x0)."""

    def _noise(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        z = torch.randn(x.shape, generator=generator, dtype=torch.float32,
                        device=generator.device if generator is not None else x.device)
        return z.to(device=x.device, dtype=x.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"
