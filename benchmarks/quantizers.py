"""Quantizers side by side with vector-quantize-pytorch, in one run.

    nice -n 10 .venv/bin/python benchmarks/quantizers.py            # CPU defaults (< ~10 min on 2 cores)
    .venv/bin/python benchmarks/quantizers.py --device cuda --steps 500 --time-budget 60

For every case (VQ at K = 1024 / 16384 / 262144 and D = 8 / 256, RVQ 8x1024, FSQ [8,8,8,5,5,5],
LFQ and BSQ at 2^16 and 2^18) and both implementations ("ours" = omnitok, "peer" =
vector-quantize-pytorch) it measures, each in a fresh subprocess:

* throughput at ``--n`` vectors: forward only (eval mode, no_grad) and forward + backward (train mode,
  loss = mse(latents, x) + auxiliary loss, gradients to the input and the parameters); medians over
  repeats (at least one, more while ``--time-budget`` seconds allow, up to ``--repeats``);
* peak memory of the first call in each mode. CPU: the rise of the process's peak resident set size
  (``VmHWM`` in /proc/self/status, reset by writing 5 to /proc/self/clear_refs) above the resident
  size with data and module loaded -- tracemalloc cannot see torch's allocator. CUDA:
  ``torch.cuda.max_memory_allocated`` above the allocated baseline;
* codebook usage after ``--steps`` training steps on batches of ``--usage-batch`` vectors from the same
  data (Adam on the module's parameters, EMA updates where the quantizer has them; k-means init and
  dead-code restarts on for both VQ implementations), then the fraction of codes used and the
  perplexity on ``--usage-eval`` held-out vectors. Ours runs first within ``--usage-budget`` seconds;
  the peer then runs exactly as many steps.

Data: a Gaussian mixture with ``--clusters`` clusters (Zipf-like weights, per-cluster scales, shifted
off the origin as encoder outputs are), in the case's input dimension.

A call estimated (from a probe at n/16) to take more than ``--max-call-s`` seconds is skipped with
the reason, as is a call that runs out of memory: CPU children run under an address-space limit
(``--mem-limit-gib``) so an (N, K) matrix fails fast instead of swapping the machine. When one side
cannot run at ``--n``, both are also measured at the largest common smaller n so a ratio exists.

Writes benchmarks/results/quantizers_<device>.json and the ``## Quantizers`` section of
docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    name: str
    kind: str  # vq | rvq | fsq | lfq | bsq
    dim: int  # input dimension D
    size: int  # codebook size K (per codebook)
    extra: dict[str, Any] = field(default_factory=dict)
    memory_target: bool = False  # the "train at N = 65,536 within 8 GiB" applies


CASES = [
    Case("VQ K=1024 D=8", "vq", 8, 1024),
    Case("VQ K=1024 D=256", "vq", 256, 1024),
    Case("VQ K=16384 D=8", "vq", 8, 16384),
    Case("VQ K=16384 D=256", "vq", 256, 16384),
    Case("VQ K=262144 D=8", "vq", 8, 262144, memory_target=True),
    Case("VQ K=262144 D=256", "vq", 256, 262144, memory_target=True),
    Case("RVQ 8x1024 D=128", "rvq", 128, 1024, {"levels": 8}),
    Case("FSQ [8,8,8,5,5,5] D=32", "fsq", 32, 64000, {"levels": [8, 8, 8, 5, 5, 5]}),
    Case("LFQ 2^16 D=32", "lfq", 32, 2**16, {"bits": 16}),
    Case("LFQ 2^18 D=32", "lfq", 32, 2**18, {"bits": 18}, memory_target=True),
    Case("BSQ 2^16 D=32", "bsq", 32, 2**16, {"bits": 16}),
    Case("BSQ 2^18 D=32", "bsq", 32, 2**18, {"bits": 18}, memory_target=True),
]


# =============================================================================================
# child side: one (case, implementation) per process
# =============================================================================================
def _rss_kib(key: str) -> int:
    m = re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text())
    return int(m.group(1)) if m else 0


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


class Mixture:
    """Gaussian mixture sampler: Zipf-like cluster weights, per-cluster scales, off-centre."""

    def __init__(self, dim: int, clusters: int, seed: int = 0) -> None:
        import torch

        g = torch.Generator().manual_seed(seed)
        self.centres = torch.randn(clusters, dim, generator=g) + 1.0  # (C, D), shifted off the origin
        self.scales = 0.1 + 0.3 * torch.rand(clusters, 1, generator=g)  # (C, 1)
        w = 1.0 / (torch.arange(clusters, dtype=torch.float64) + 10.0) ** 0.5
        self.weights = (w / w.sum()).float()

    def sample(self, n: int, seed: int):  # noqa: ANN201
        import torch

        g = torch.Generator().manual_seed(seed)
        idx = torch.multinomial(self.weights, n, replacement=True, generator=g)
        noise = torch.randn(n, self.centres.shape[1], generator=g)
        return self.centres[idx] + self.scales[idx] * noise  # (n, D)


def _build(case: Case, impl: str, kmeans: bool):  # noqa: ANN202
    """The module and a call wrapper returning (latents (n, D), codes (n, G), aux loss)."""
    import torch

    k, d = case.size, case.dim
    if impl == "ours":
        from omnitok.quantizers.bsq import BSQ
        from omnitok.quantizers.fsq import FSQ
        from omnitok.quantizers.lfq import LFQ

        if case.kind == "vq":
            from omnitok.quantizers.vq import VectorQuantizer

            m = VectorQuantizer(d, k, kmeans_init=kmeans)
        elif case.kind == "rvq":
            from omnitok.quantizers.rvq import ResidualVQ

            m = ResidualVQ(d, k, case.extra["levels"], kmeans_init=kmeans)
        elif case.kind == "fsq":
            m = FSQ(case.extra["levels"], dim=d)
        elif case.kind == "lfq":
            m = LFQ(d, case.extra["bits"])
        else:
            m = BSQ(d, case.extra["bits"])

        def call(x):  # noqa: ANN001, ANN202
            out = m(x)
            return out.latents, out.codes, out.loss

        return m, call

    import vector_quantize_pytorch as vqp

    if case.kind == "vq":
        m = vqp.VectorQuantize(dim=d, codebook_size=k, kmeans_init=kmeans, threshold_ema_dead_code=2)
    elif case.kind == "rvq":
        m = vqp.ResidualVQ(
            dim=d, num_quantizers=case.extra["levels"], codebook_size=k, kmeans_init=kmeans,
            threshold_ema_dead_code=2,
        )
    elif case.kind == "fsq":
        m = vqp.FSQ(levels=case.extra["levels"], dim=d)
    else:
        m = vqp.LFQ(dim=d, codebook_size=k, spherical=case.kind == "bsq")

    def call(x):  # noqa: ANN001, ANN202
        out = m(x[None])  # peer wants (B, N, D)
        latents, codes = out[0][0], out[1][0]
        aux = out[2].sum() if len(out) > 2 else torch.zeros((), device=x.device)
        if codes.dim() == 1:
            codes = codes[:, None]
        return latents, codes, aux

    return m, call


_T0 = time.perf_counter()


def _log(msg: str) -> None:
    """Progress of a child, on stderr (the parent keeps the tail when a case times out)."""
    print(f"[{time.perf_counter() - _T0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _is_oom(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, MemoryError) or "out of memory" in text or "can't allocate memory" in text or (
        "allocat" in text and "memory" in text
    )


def _throughput(spec: dict, case: Case, mix: Mixture, n: int, impls: list[str]) -> dict[str, dict]:
    """Both implementations at n vectors in this process, timed calls interleaved (ours, peer, ours,
    ...) so that both see the same machine load."""
    import torch

    device = spec["device"]
    x_full = mix.sample(n, seed=1).to(device)
    res: dict[str, dict] = {impl: {} for impl in impls}
    calls: dict[str, dict] = {}

    def peak(fn) -> float:  # noqa: ANN001
        """MiB above the baseline during fn()."""
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fn()
            return (torch.cuda.max_memory_allocated() - base) / 2**20
        base = _rss_kib("VmRSS")
        _reset_peak()
        fn()
        return max(_rss_kib("VmHWM") - base, 0) / 1024

    for impl in impls:
        r = res[impl]
        try:
            torch.manual_seed(0)
            m, call = _build(case, impl, kmeans=False)
            m = m.to(device)

            def eval_call(x, m=m, call=call) -> None:  # noqa: ANN001
                m.eval()
                with torch.no_grad():
                    call(x)
                _sync(device)

            def train_call(x, m=m, call=call) -> None:  # noqa: ANN001
                m.train()
                xg = x.clone().requires_grad_(True)
                latents, _, aux = call(xg)
                loss = torch.nn.functional.mse_loss(latents, xg) + aux
                loss.backward()
                m.zero_grad(set_to_none=True)
                _sync(device)

            # probe at n/8 (after a warm-up call) to estimate one call at n; skip what is too slow
            probe_n = max(256, n // 64)
            r["probe_n"] = probe_n
            _log(f"{impl}: probe at n={probe_n}")
            xp = x_full[:probe_n]
            eval_call(xp[:256])  # warm-up
            t0 = time.perf_counter()
            eval_call(xp)
            train_call(xp)
            dt = time.perf_counter() - t0
            est = dt * n / probe_n
            r["est_call_s"] = est
            if est > spec["max_call_s"]:
                r["status"] = "skipped"
                r["reason"] = (f"estimated {est:.0f} s for one eval + one train call at n={n:,} "
                               f"(> {spec['max_call_s']:.0f} s)")
                r["feasible_n"] = probe_n * spec["max_call_s"] / max(dt, 1e-9)
                if impl == "ours" and case.memory_target and n == spec["n"] and est < spec["max_memory_call_s"]:
                    # a memory target at the full n: one train call, for its peak only
                    r["train_peak_mib"] = peak(lambda tc=train_call: tc(x_full))
                    r["memory_only"] = True
                continue
            _log(f"{impl}: estimated {est:.1f} s per eval + train call at n={n}")
            calls[impl] = {"eval": eval_call, "train": train_call}
        except Exception as e:  # noqa: BLE001 -- recorded, the run goes on
            r.update(status="oom" if _is_oom(e) else "error", reason=f"{type(e).__name__}: {str(e)[:200]}")

    def fail(impl: str, e: Exception, what: str) -> None:
        calls.pop(impl, None)
        res[impl].update(status="oom" if _is_oom(e) else "error",
                         reason=f"{what} at n={n:,}: {type(e).__name__}: {str(e)[:200]}")
        if device == "cuda":
            torch.cuda.empty_cache()

    for impl in list(calls):  # first call of each mode: peak memory (also the warm-up at n)
        _log(f"{impl}: first calls at n={n}")
        try:
            res[impl]["eval_peak_mib"] = peak(lambda impl=impl: calls[impl]["eval"](x_full))
            res[impl]["train_peak_mib"] = peak(lambda impl=impl: calls[impl]["train"](x_full))
        except Exception as e:  # noqa: BLE001
            fail(impl, e, "first call")
    for mode in ("eval", "train"):
        _log(f"timing {mode} at n={n}")
        times: dict[str, list[float]] = {impl: [] for impl in calls}
        start = time.perf_counter()
        for rep in range(spec["repeats"]):
            if rep and time.perf_counter() - start > spec["time_budget"]:
                break
            for impl in list(calls):
                try:
                    c0 = time.process_time()
                    t = time.perf_counter()
                    calls[impl][mode](x_full)
                    times[impl].append(time.perf_counter() - t)
                    res[impl].setdefault(f"{mode}_cpu_s", []).append(time.process_time() - c0)
                except Exception as e:  # noqa: BLE001
                    fail(impl, e, mode)
        for impl, ts in times.items():
            if impl in calls and ts:
                res[impl][f"{mode}_times_s"] = ts
                res[impl][f"{mode}_vps"] = n / statistics.median(ts)
    for impl in calls:
        res[impl]["status"] = "ok"
    return res


def _usage(spec: dict, case: Case, mix: Mixture, impl: str, steps_fixed: int | None) -> dict:
    import torch

    device, batch = spec["device"], spec["usage_batch"]
    torch.manual_seed(0)
    m, call = _build(case, impl, kmeans=True)
    m = m.to(device).train()
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3) if params else None
    target = steps_fixed if steps_fixed is not None else spec["steps"]
    budget = spec["usage_budget"] * (2.5 if steps_fixed is not None else 1.0)
    start = time.perf_counter()
    steps = 0
    _log(f"{impl}: usage training, up to {target} steps")
    while steps < target:
        x = mix.sample(batch, seed=1000 + steps).to(device)
        latents, _, aux = call(x)
        loss = torch.nn.functional.mse_loss(latents, x) + aux
        if opt is not None and loss.requires_grad:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        steps += 1
        _sync(device)
        if time.perf_counter() - start > budget:
            break
    train_s = time.perf_counter() - start
    _log(f"{impl}: usage training {steps} steps in {train_s:.1f} s; evaluating")
    m.eval()
    x_eval = mix.sample(spec["usage_eval"], seed=7)
    chunk = int(max(256, min(8192, 2**27 // max(case.size, 1))))
    codes = []
    with torch.no_grad():
        for c in x_eval.split(chunk):
            codes.append(call(c.to(device))[1].cpu())
    codes = torch.cat(codes)  # (n_eval, G)
    usage, ppl = [], []
    for g in range(codes.shape[1]):
        _, counts = torch.unique(codes[:, g], return_counts=True)
        p = counts.double() / counts.sum()
        usage.append(counts.numel() / case.size)
        ppl.append(float(torch.exp(-(p * p.log()).sum())))
    return {
        "usage_status": "ok" if steps == target else "partial",
        "usage_steps": steps,
        "usage_train_s": train_s,
        "usage": sum(usage) / len(usage),
        "perplexity": sum(ppl) / len(ppl),
    }


def child_main(spec: dict) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    if spec["device"] == "cpu" and spec["mem_limit_gib"] > 0:
        limit = _rss_kib("VmSize") * 1024 + int(spec["mem_limit_gib"] * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    case = Case(**spec["case"])
    impls = spec["impls"]
    mix = Mixture(case.dim, spec["clusters"], seed=0)
    n = spec["n"]
    if spec["mode"] == "usage":
        impl = impls[0]
        try:
            res = _usage(spec, case, mix, impl, spec.get("usage_steps_fixed"))
        except Exception as e:  # noqa: BLE001
            res = {"usage_status": "oom" if _is_oom(e) else "error",
                   "usage_reason": f"{type(e).__name__}: {str(e)[:200]}"}
        print("RESULT " + json.dumps(res), flush=True)
        return
    runs = [{"n": n, **_throughput(spec, case, mix, n, impls)}]
    first = runs[0]
    if len(impls) > 1 and any(first[i].get("status") != "ok" for i in impls):
        # one side could not run at n: measure both at the largest common smaller n
        feas = [float(n)]
        for i in impls:
            r = first[i]
            if r.get("feasible_n"):
                feas.append(r["feasible_n"])
            elif r.get("status") in ("oom", "error"):  # the probe at n/8 ran, or it failed too
                feas.append(r["probe_n"] if "est_call_s" in r else n / 64)
        n2 = 2 ** int(math.log2(max(min(feas), 1)))
        if spec["min_n"] <= n2 < n:
            runs.append({"n": n2, **_throughput(spec, case, mix, n2, impls)})
    print("RESULT " + json.dumps({"runs": runs}), flush=True)


# =============================================================================================
# parent side
# =============================================================================================
def run_child(spec: dict, timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        last = err.strip().splitlines()[-1] if err.strip() else "no progress line"
        return {"error": f"case timed out after {timeout:.0f} s (last step: {last})"}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (p.stderr or p.stdout)[-300:].strip().replace("\n", " | ")
    return {"error": f"child exited {p.returncode}: {tail}"}


def machine_info(device: str) -> dict:
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    with contextlib.suppress(OSError, AttributeError):
        mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) / 2**20
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "mem_gib": round(mem, 1) if mem else None,
        "load_avg_at_start": os.getloadavg(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _fmt_vps(r: dict, key: str) -> str:
    if r.get("status") != "ok":
        return f"{r.get('status', '-')}"
    v = r[key]
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.1f}k"


def _ratio(a: dict, b: dict, key: str) -> str:
    if a.get("status") == "ok" and b.get("status") == "ok":
        return f"{a[key] / b[key]:.2f}x"
    return "-"


def _mib(r: dict, key: str) -> str:
    if key not in r:
        return "-"
    return f"{r[key]:.0f}" + (" (1 call)" if r.get("memory_only") else "")


def _fmt_usage(r: dict) -> str:
    if r.get("usage_status") not in ("ok", "partial"):
        return r.get("usage_status", "-")
    s = f"{100 * r['usage']:.1f}% (ppl {r['perplexity']:.0f})"
    return s + (f" [{r['usage_steps']} st]" if r.get("usage_status") == "partial" else "")


def _load(v: list[float] | None) -> str:
    return "/".join(f"{x:.1f}" for x in v) if v else "n/a"


def render_markdown(report: dict) -> str:
    a = report["args"]
    dev = a["device"]
    lines = [
        "## Quantizers",
        "",
        (f"omnitok (\"ours\") vs vector-quantize-pytorch {report['peer_version']} (\"peer\")" if report.get("peer")
         else "omnitok (\"ours\") alone (no peer installed)")
        + ", measured in one run by "
        f"`{report['command']}` on {report['machine']['cpu']} ({report['machine']['cpu_count']} cores"
        + (f", {report['machine'].get('gpu')}" if dev == "cuda" else "")
        + f"), torch {report['machine']['torch']}, {report['date']}. Raw numbers: "
        f"`benchmarks/results/quantizers_{dev}.json`. Load average (1/5/15 min) at start "
        f"{_load(report['machine']['load_avg_at_start'])}, at end {_load(report['load_avg_at_end'])}: the machine was "
        "shared, so absolute rates are noisy; ours and the peer run in the same process with their timed calls "
        "interleaved, so the ratios are the robust figure.",
        "",
        "Throughput = vectors per second, median over repeats; eval = forward under no_grad, train = forward + "
        "backward (loss = mse(latents, x) + auxiliary). Peak = "
        + (
            "torch.cuda.max_memory_allocated above the baseline"
            if dev == "cuda"
            else "rise of the process's peak RSS (VmHWM, reset via /proc/self/clear_refs) above the resident size "
            "just before the call (data and modules loaded), one fresh process per case"
        )
        + f", MiB, first train call. Usage = fraction of the codebook used on {a['usage_eval']:,} held-out vectors "
        f"(at most {a['usage_eval']:,} distinct codes can appear) after `steps` training steps of "
        f"{a['usage_batch']:,} vectors (target {a['steps']}: ours runs up to that many within a time budget, the "
        "peer as many as ours did unless its own budget runs out first; `[k st]` marks fewer steps), "
        f"perplexity in brackets. Data: Gaussian mixture, {a['clusters']:,} clusters. "
        + (f"torch threads per process: {a['threads']}. " if a.get("threads") else "")
        + f"Whole run: {report['wall_s'] / 60:.0f} min. "
        + "BSQ's peer is "
        "`LFQ(spherical=True)`. `oom` = over the "
        + (f"{a['mem_limit_gib']:g} GiB address-space limit" if dev == "cpu" else "GPU memory")
        + "; `skipped` = estimated above "
        f"{a['max_call_s']:g} s per call.",
        "",
        "| case | n | eval ours | eval peer | eval ratio | train ours | train peer | train ratio "
        "| peak MiB ours | peak MiB peer | steps | usage ours | usage peer |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["results"]:
        for run in row["runs"]:
            o, p = run["ours"], run["peer"]
            first = run is row["runs"][0]
            lines.append(
                f"| {row['case']['name'] if first else '  (same, smaller n)'} | {run['n']:,} | {_fmt_vps(o, 'eval_vps')} "
                f"| {_fmt_vps(p, 'eval_vps')} | {_ratio(o, p, 'eval_vps')} | {_fmt_vps(o, 'train_vps')} "
                f"| {_fmt_vps(p, 'train_vps')} | {_ratio(o, p, 'train_vps')} | {_mib(o, 'train_peak_mib')} "
                f"| {_mib(p, 'train_peak_mib')} | "
                + (f"{row['usage_steps']} | {_fmt_usage(row['usage'].get('ours', {}))} | {_fmt_usage(row['usage'].get('peer', {}))} |"
                   if first and row.get("usage") else "| | |")
            )
    notes = []
    for row in report["results"]:
        for run in row["runs"]:
            for impl in ("ours", "peer"):
                r = run[impl]
                if r.get("status") != "ok" and r.get("reason"):
                    notes.append(f"- {row['case']['name']}, {impl}, n={run['n']:,}: {r['status']}: {r['reason']}")
        for impl in ("ours", "peer"):
            u = (row.get("usage") or {}).get(impl, {})
            if u.get("usage_reason"):
                notes.append(f"- {row['case']['name']}, {impl}, usage: {u['usage_status']}: {u['usage_reason']}")
    if notes:
        lines += ["", "Skipped or failed:", *notes]
    lines += ["", "Targets:", *[f"- {t}" for t in report["targets"]], ""]
    return "\n".join(lines)


def evaluate_targets(report: dict) -> list[str]:
    out = []
    n_full = report["args"]["n"]
    for row in report["results"]:
        c = row["case"]
        if c["kind"] == "vq" and c["size"] >= 16384:
            run = next((r for r in row["runs"] if r["ours"].get("status") == "ok" and r["peer"].get("status") == "ok"), None)
            if run is None:
                out.append(f"{c['name']}: no common n where both ran; ours "
                           f"{row['runs'][0]['ours'].get('status')}, peer {row['runs'][0]['peer'].get('status')} at n={n_full:,}")
            else:
                re_, rt = (run["ours"][k] / run["peer"][k] for k in ("eval_vps", "train_vps"))
                u = row.get("usage") or {}
                uo, up = u.get("ours", {}).get("usage"), u.get("peer", {}).get("usage")
                so, sp = u.get("ours", {}).get("usage_steps"), u.get("peer", {}).get("usage_steps")
                fast = min(re_, rt) >= 1.5
                if uo is None or up is None:
                    use, verdict = "usage n/a", "INCONCLUSIVE"
                elif so != sp:
                    use = (f"usage {100 * uo:.1f}% after {so} steps vs {100 * up:.1f}% after {sp} steps "
                           "(not comparable: the peer ran fewer steps in its time budget)")
                    verdict = "throughput MET, usage INCONCLUSIVE" if fast else "MISSED"
                else:
                    better = uo >= up - 1e-9
                    use = f"usage {100 * uo:.1f}% vs {100 * up:.1f}% after {so} steps ({'equal or better' if better else 'WORSE'})"
                    verdict = "MET" if fast and better else "MISSED"
                out.append(f"{c['name']} (n={run['n']:,}): eval {re_:.2f}x, train {rt:.2f}x the peer, {use} -> "
                           f"{verdict} (target >= 1.5x, usage >= peer)")
        if c.get("memory_target"):
            o = row["runs"][0]["ours"]
            if "train_peak_mib" in o:
                gib = o["train_peak_mib"] / 1024
                out.append(f"{c['name']} train at n={row['runs'][0]['n']:,}: peak {gib:.2f} GiB -> "
                           f"{'MET' if gib <= 8 and row['runs'][0]['n'] >= 65536 else 'MISSED'} (target <= 8 GiB at n=65,536)")
            else:
                out.append(f"{c['name']} train at n={n_full:,}: {o.get('status')} ({o.get('reason', '')}) -> not measured")
    return out


def write_docs(md: str, path: Path) -> None:
    text = path.read_text() if path.exists() else "# Performance\n\n"
    pattern = re.compile(r"^## Quantizers\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: md.rstrip() + "\n\n", text)
    else:
        text = text.rstrip() + "\n\n" + md.rstrip() + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--n", type=int, default=65536, help="vectors per throughput call")
    ap.add_argument("--repeats", type=int, default=None, help="max timed repeats per mode (cpu 3, cuda 10)")
    ap.add_argument("--time-budget", type=float, default=None, help="seconds of timed repeats per mode (cpu 6)")
    ap.add_argument("--max-call-s", type=float, default=None, help="skip a call estimated above this (cpu 30)")
    ap.add_argument("--max-memory-call-s", type=float, default=None,
                    help="still run one train call at --n for a memory target when estimated below this (cpu 180)")
    ap.add_argument("--steps", type=int, default=None, help="usage training steps (cuda 500, cpu 100)")
    ap.add_argument("--usage-batch", type=int, default=None, help="vectors per usage step (cpu 1024, cuda 8192)")
    ap.add_argument("--usage-eval", type=int, default=16384, help="held-out vectors for the usage figure")
    ap.add_argument("--usage-budget", type=float, default=None,
                    help="seconds for our usage training (cpu 8); the peer gets 2.5x for the same steps")
    ap.add_argument("--clusters", type=int, default=16384, help="clusters in the Gaussian mixture")
    ap.add_argument("--mem-limit-gib", type=float, default=12.0, help="address-space limit per CPU child")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads in the children (cpu default 1: OpenMP threads stall badly on a shared "
                         "machine; 0 = torch's default)")
    ap.add_argument("--only", nargs="*", help="substrings of case names to run")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--child-timeout", type=float, default=300.0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--docs", type=Path, default=ROOT / "docs" / "performance.md")
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--render-only", type=Path, default=None,
                    help="re-render the table and targets from a results JSON (no measurement)")
    args = ap.parse_args(argv)
    if args.render_only:
        report = json.loads(args.render_only.read_text())
        report["targets"] = evaluate_targets(report)
        args.render_only.write_text(json.dumps(report, indent=1) + "\n")
        md = render_markdown(report)
        if not args.no_docs:
            write_docs(md, args.docs)
        print(md)
        return 0
    if args.child:
        child_main(json.loads(args.child))
        return 0

    import torch

    cpu = args.device == "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    args.repeats = args.repeats or (3 if cpu else 10)
    args.threads = (1 if cpu else 0) if args.threads is None else args.threads
    args.time_budget = args.time_budget or (6.0 if cpu else 30.0)
    args.max_call_s = args.max_call_s or (30.0 if cpu else 60.0)
    args.max_memory_call_s = args.max_memory_call_s or (180.0 if cpu else 300.0)
    args.steps = args.steps or (100 if cpu else 500)
    args.usage_batch = args.usage_batch or (1024 if cpu else 8192)
    args.usage_budget = args.usage_budget or (8.0 if cpu else 120.0)
    if args.n < 1024:
        raise SystemExit(f"--n must be >= 1024, got {args.n}")
    try:
        from importlib.metadata import version

        peer_version = version("vector-quantize-pytorch")
    except Exception:  # noqa: BLE001
        peer_version = None
    if peer_version is None and not args.no_peer:
        print("quantizers: vector-quantize-pytorch is not installed (pip install 'omnitok[bench]'): measuring "
              "omnitok alone; the docs table is left as it is", file=sys.stderr, flush=True)
        args.no_peer = args.no_docs = True

    from tqdm import tqdm

    cases = [c for c in CASES if not args.only or any(s.lower() in c.name.lower() for s in args.only)]
    base = {
        "device": args.device, "repeats": args.repeats, "time_budget": args.time_budget,
        "max_call_s": args.max_call_s, "max_memory_call_s": args.max_memory_call_s, "steps": args.steps, "usage_batch": args.usage_batch,
        "usage_eval": args.usage_eval, "usage_budget": args.usage_budget, "clusters": args.clusters,
        "mem_limit_gib": args.mem_limit_gib if cpu else 0, "threads": args.threads, "n": args.n,
        "min_n": 1024, "impls": ["ours"] if args.no_peer else ["ours", "peer"],
    }
    t_start = time.time()
    load_at_start = os.getloadavg()
    results: list[dict] = []
    out_path = args.out or ROOT / "benchmarks" / "results" / f"quantizers_{args.device}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(cases, desc="quantizer cases", unit="case")
    for case in bar:
        bar.set_postfix_str(case.name)
        t0 = time.time()
        spec = dict(base, case=asdict(case))
        out = run_child(dict(spec, mode="throughput"), args.child_timeout)
        if "error" in out:  # the whole case failed: record it
            out = {"runs": [{"n": args.n, **{i: {"status": "error", "reason": out["error"]} for i in base["impls"]}}]}
        for run in out["runs"]:
            run.setdefault("peer", {"status": "not run"})
        # usage: ours within the budget, then the peer for as many steps; each in its own process with
        # a hard timeout (a first step with k-means over 2^18 codes can take minutes on a CPU)
        usage: dict[str, dict] = {}
        steps = None
        for impl in base["impls"]:
            limit = args.usage_budget * (1.0 if impl == "ours" else 2.5) * 2 + 60
            u = run_child(dict(spec, mode="usage", impls=[impl], usage_steps_fixed=steps), limit)
            if "error" in u:
                u = {"usage_status": "skipped", "usage_reason": u["error"]}
            usage[impl] = u
            if impl == "ours":
                steps = u.get("usage_steps")
                if steps is None:
                    break
        out.update(usage=usage, usage_steps=steps)
        out["usage"].setdefault("peer", {})
        results.append({"case": asdict(case), "wall_s": round(time.time() - t0, 1), **out})
        # the report so far after every case, so a run stopped by a time cap keeps what it measured
        report = make_report(argv, args, peer_version, t_start, load_at_start, results, complete=False)
        out_path.write_text(json.dumps(report, indent=1) + "\n")
        tqdm.write(f"{case.name} ({time.time() - t0:.0f} s): " + ", ".join(
            f"n={r['n']} ours {r['ours'].get('status')} peer {r['peer'].get('status')}" for r in out["runs"]))
    report = make_report(argv, args, peer_version, t_start, load_at_start, results, complete=True)
    out_path.write_text(json.dumps(report, indent=1) + "\n")
    md = render_markdown(report)
    if not args.no_docs:
        write_docs(md, args.docs)
    print(md)
    print(f"\nwrote {out_path} in {report['wall_s']:.0f} s")
    return 0


def make_report(argv: list[str] | None, args: argparse.Namespace, peer_version: str | None, t_start: float,
                load_at_start: tuple[float, float, float], results: list[dict], complete: bool) -> dict:
    """The results JSON: machine, versions, arguments, one row per case, the targets' verdicts."""
    report = {
        "benchmark": "quantizers",
        "complete": complete,  # False: written after a case, more were to come
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_avg_at_end": os.getloadavg(),
        "command": "python benchmarks/quantizers.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "wall_s": round(time.time() - t_start, 1),
        "machine": dict(machine_info(args.device), load_avg_at_start=load_at_start),
        "peer": None if args.no_peer else "vector-quantize-pytorch",
        "peer_version": peer_version,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "child"},
        "results": results,
    }
    report["targets"] = evaluate_targets(report)
    return report


if __name__ == "__main__":
    raise SystemExit(main())
