"""Schedulers against closed forms: the forward process, DDIM inversion, DDPM's posterior, the limit of many steps."""

from __future__ import annotations

import math

import pytest
import torch

from omnitok.diffusion import (
    DDIMScheduler,
    DDPMScheduler,
    FlowEulerScheduler,
    SchedulerConfig,
    make_scheduler,
)

T = 1000


def naive_alpha_bar(schedule: str, T: int = T) -> list[float]:
    """alpha_bar_t by the papers' formulas, one Python float at a time."""
    if schedule == "linear":
        betas = [1e-4 + (0.02 - 1e-4) * i / (T - 1) for i in range(T)]
    else:
        f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        betas = [min(1 - f(i + 1) / f(i), 0.999) for i in range(T)]
    out, prod = [], 1.0
    for b in betas:
        prod *= 1 - b
        out.append(prod)
    return out


VALID = [(s, p) for s in ("linear", "cosine", "flow") for p in ("epsilon", "v", "x0")
         if (s, p) != ("flow", "epsilon")]  # refused at construction (tested below)


@pytest.mark.parametrize(("schedule", "prediction"), VALID)
def test_add_noise_matches_the_formula_at_every_t(schedule: str, prediction: str) -> None:
    sched = DDPMScheduler(SchedulerConfig(schedule=schedule, prediction_type=prediction))
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(T, 3, 4, 4, generator=g, dtype=torch.float64)
    noise = torch.randn(T, 3, 4, 4, generator=g, dtype=torch.float64)
    t = torch.arange(T)
    got = sched.add_noise(x0, noise, t)
    if schedule == "flow":
        s = (t + 1).double() / T
        a, sig = 1 - s, s
    else:
        ab = torch.tensor(naive_alpha_bar(schedule), dtype=torch.float64)
        a, sig = ab.sqrt(), (1 - ab).sqrt()
    want = a[:, None, None, None] * x0 + sig[:, None, None, None] * noise
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    # the training target is what predict() inverts back to (x0, noise)
    target = sched.training_target(x0, noise, t)
    for i in (0, 1, 499, T - 2):  # one timestep at a time, as sampling calls predict
        x0_hat, eps_hat = sched.predict(target[i : i + 1], int(i), got[i : i + 1])
        torch.testing.assert_close(x0_hat, x0[i : i + 1], rtol=1e-7, atol=1e-7)
        torch.testing.assert_close(eps_hat, noise[i : i + 1], rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("config", [SchedulerConfig(), SchedulerConfig(schedule="cosine", prediction_type="v"),
                                    SchedulerConfig(schedule="linear", prediction_type="x0", zero_terminal_snr=True),
                                    SchedulerConfig(schedule="flow", prediction_type="v")])
@pytest.mark.parametrize("steps", [1, 7, 50, T])
def test_ddim_eta0_with_the_true_noise_reconstructs_x0(config: SchedulerConfig, steps: int) -> None:
    sched = DDIMScheduler(config, eta=0.0)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64)
    noise = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64)
    ts = sched.set_timesteps(steps)
    assert ts[0] == T - 1 and len(ts) == steps and bool((ts[:-1] > ts[1:]).all())
    x = sched.add_noise(x0, noise, ts[0])
    for t in ts:  # an oracle model: the exact target for the true (x0, noise)
        out = sched.step(sched.training_target(x0, noise, t), t, x)
        x = out.prev_sample
        torch.testing.assert_close(out.pred_x0, x0, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(x, x0, rtol=1e-8, atol=1e-8)


def naive_posterior(t: int, alpha_bar: list[float]) -> tuple[float, float, float]:
    """DDPM eq. 6-7: mu~ = sqrt(ab_{t-1}) beta_t / (1 - ab_t) x0 + sqrt(alpha_t) (1 - ab_{t-1}) / (1 - ab_t) x_t,
    beta~ = (1 - ab_{t-1}) / (1 - ab_t) beta_t."""
    ab_t, ab_p = alpha_bar[t], alpha_bar[t - 1] if t > 0 else 1.0
    alpha_t = ab_t / ab_p
    beta_t = 1 - alpha_t
    return (math.sqrt(ab_p) * beta_t / (1 - ab_t), math.sqrt(alpha_t) * (1 - ab_p) / (1 - ab_t),
            (1 - ab_p) / (1 - ab_t) * beta_t)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_ddpm_posterior_mean_and_variance_match_a_naive_implementation(schedule: str) -> None:
    sched = DDPMScheduler(SchedulerConfig(schedule=schedule))
    ab = naive_alpha_bar(schedule)
    for t in range(T):
        c_x0, c_xt, var = (float(v) for v in sched.posterior(t, t - 1))
        n_x0, n_xt, n_var = naive_posterior(t, ab)
        assert c_x0 == pytest.approx(n_x0, rel=1e-9, abs=1e-12), t
        assert c_xt == pytest.approx(n_xt, rel=1e-9, abs=1e-12), t
        assert var == pytest.approx(n_var, rel=1e-9, abs=1e-14), t
    # fewer steps: the step from t to its predecessor p uses beta = 1 - ab_t / ab_p (the "respaced" DDPM)
    sched.set_timesteps(10)
    ts = sched.timesteps.tolist()
    g = torch.Generator().manual_seed(0)
    for t, p in zip(ts, ts[1:]):
        x = torch.randn(3, 5, generator=g, dtype=torch.float64)
        eps = torch.randn(3, 5, generator=g, dtype=torch.float64)
        out = sched.step(eps, t, x, generator=torch.Generator().manual_seed(7))
        z = torch.randn(3, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float32).double()
        ab_t, ab_p = ab[t], ab[p]
        x0 = (x - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)
        beta = 1 - ab_t / ab_p
        mean = (math.sqrt(ab_p) * beta / (1 - ab_t)) * x0 + math.sqrt(1 - beta) * (1 - ab_p) / (1 - ab_t) * x
        std = math.sqrt((1 - ab_p) / (1 - ab_t) * beta)
        torch.testing.assert_close(out.prev_sample, mean + std * z, rtol=1e-9, atol=1e-9)
    last = sched.step(torch.zeros(2, 2, dtype=torch.float64), ts[-1], torch.ones(2, 2, dtype=torch.float64))
    torch.testing.assert_close(last.prev_sample, last.pred_x0)  # the last step returns the mean, no noise


# ----- the three samplers agree in the limit, on a Gaussian target whose score is known -----------------------
MU, STD = 0.7, 0.4


def oracle(sched, t, x: torch.Tensor) -> torch.Tensor:
    """The exact model output for x0 ~ N(MU, STD^2): E[x0 | x_t] = MU + a STD^2 / (a^2 STD^2 + s^2) (x_t - a MU)."""
    a, s = (v.item() for v in sched.alpha_sigma(t))
    x0 = MU + a * STD**2 / (a * a * STD**2 + s * s) * (x - a * MU)
    eps = (x - a * x0) / s
    p = sched.config.prediction_type
    return {"epsilon": eps, "x0": x0, "v": a * eps - s * x0}[p]


def run_sampler(sched, steps: int, x_T: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = x_T.clone()
    for t in sched.set_timesteps(steps):
        x = sched.step(oracle(sched, t, x), t, x, generator=g).prev_sample
    return x


@pytest.mark.parametrize("config", [SchedulerConfig(), SchedulerConfig(schedule="cosine", prediction_type="v"),
                                    SchedulerConfig(schedule="flow", prediction_type="x0")])
def test_samplers_agree_in_the_limit_of_many_steps(config: SchedulerConfig) -> None:
    x_T = torch.randn(4000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ref = DDIMScheduler(config)
    a, s = (v.item() for v in ref.alpha_sigma(T - 1))
    # the probability-flow ODE of a Gaussian keeps (x_t - a MU) / sqrt(a^2 STD^2 + s^2) fixed: its exact end point
    exact = MU + STD * (x_T - a * MU) / math.sqrt(a * a * STD**2 + s * s)
    errors = {}
    for name, sched in (("ddim", ref), ("euler", FlowEulerScheduler(config))):
        for n in (50, T):
            errors[name, n] = (run_sampler(sched, n, x_T) - exact).abs().max().item()
    for name in ("ddim", "euler"):  # first order: 20x the steps, about 1/20 of the error, and close at T steps
        assert errors[name, T] < 6e-3 and errors[name, T] < errors[name, 50] / 10, errors
    ddim = run_sampler(ref, T, x_T)
    ddpm = run_sampler(DDPMScheduler(config), T, x_T)  # stochastic: compare in distribution
    assert abs(ddpm.mean().item() - MU) < 0.02 and abs(ddpm.std().item() - STD) < 0.02
    assert abs(ddim.mean().item() - MU) < 0.02 and abs(ddim.std().item() - STD) < 0.02
    stochastic = run_sampler(DDIMScheduler(config, eta=1.0), 200, x_T)
    assert abs(stochastic.mean().item() - MU) < 0.02 and abs(stochastic.std().item() - STD) < 0.02


def test_invalid_combinations_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="zero terminal SNR"):
        DDIMScheduler(SchedulerConfig(zero_terminal_snr=True, prediction_type="epsilon"))
    with pytest.raises(ValueError, match="zero terminal SNR"):
        make_scheduler("euler", {"schedule": "flow", "prediction_type": "epsilon"})
    with pytest.raises(ValueError, match="prediction_type"):
        DDPMScheduler(SchedulerConfig(prediction_type="score"))
    with pytest.raises(ValueError, match="schedule must be one of"):
        DDPMScheduler(SchedulerConfig(schedule="sigmoid"))
    with pytest.raises(ValueError, match="beta_start < beta_end"):
        DDPMScheduler(SchedulerConfig(beta_start=0.02, beta_end=1e-4))
    with pytest.raises(ValueError, match="eta"):
        DDIMScheduler(SchedulerConfig(), eta=-0.5)
    with pytest.raises(ValueError, match="unknown key"):
        SchedulerConfig.from_dict({"prediction": "v"})
    with pytest.raises(ValueError, match="sampler must be one of"):
        make_scheduler("dpm++", SchedulerConfig())
    with pytest.raises(ValueError, match=r"steps must be in \[1, 1000\]"):
        DDIMScheduler().set_timesteps(1001)
    with pytest.raises(RuntimeError, match="set_timesteps"):
        DDIMScheduler().step(torch.zeros(1), 999, torch.zeros(1))


def test_zero_terminal_snr_ends_at_pure_noise_and_keeps_the_first_step() -> None:
    plain, zero = DDPMScheduler(), DDPMScheduler(zero_terminal_snr=True, prediction_type="v")
    assert zero.alphas[-1].item() == 0.0 and zero.sigmas[-1].item() == 1.0
    assert zero.alphas[0].item() == pytest.approx(plain.alphas[0].item(), rel=1e-12)
    assert bool((zero.alphas[1:] < zero.alphas[:-1]).all())
    flow = FlowEulerScheduler(schedule="flow", prediction_type="x0")
    ts = flow.set_timesteps(4)
    assert ts[0].item() == T - 1 and flow.flow_time(ts).tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25])
