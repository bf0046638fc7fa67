"""Load test of ``omnitok serve`` on the loopback interface: batched serving against one request at a time.

    .venv/bin/python benchmarks/serve_load.py [--run QUICKSTART_DIR] [--requests 48] [--concurrency 1,4,16]
                                              [--rounds 3] [--max-seconds 60]

Three real server processes over the same model: ``batched`` (``--max-batch 16 --max-wait-ms 10``, the default),
``batched-no-wait`` (``--max-wait-ms 0``: only requests that queued while a batch ran join the next one) and
``one-at-a-time`` (``--max-batch 1``: the peer, every request its own ``generate``). For each
endpoint (text -> image, text -> speech, speech -> text, chat text -> text, text -> video) and each concurrency C,
N requests are sent by C client threads; latencies p50 / p99, requests/s and errors (any non-200) are recorded.
The servers take turns cell by cell, each going first in turn, and the summary quotes medians over the
rounds: these machines are shared and noisy. Each cell is bounded: at most N requests and ``--max-seconds``.
The servers' memory (VmRSS from /proc) is read after start-up and a warm-up request, and again at the end.

``--run`` is a quickstart output folder (``lm/final`` and ``vocab``); without it the debug quickstart is trained
first into a temporary folder (about 30 s) -- a tiny model, so the figures measure the serving machinery (HTTP,
batching, codecs, small forwards), not a production-sized model. Writes ``benchmarks/results/serve_load_cpu.json``
(or ``--out``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MODES = {"batched": ["--max-batch", "16", "--max-wait-ms", "10"],
         "batched-no-wait": ["--max-batch", "16", "--max-wait-ms", "0"],
         "one-at-a-time": ["--max-batch", "1", "--max-wait-ms", "0", "--max-n", "1"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1])
    return out


class Client:
    def __init__(self, port: int) -> None:
        self.port = port

    def call(self, method: str, path: str, body: bytes | None = None, ctype: str = "application/json",
             timeout: float = 300) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": ctype} if body is not None else {})
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()


def start(run: Path, mode: str, threads: int) -> tuple[subprocess.Popen, Client]:
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "omnitok.cli", "serve", "--ckpt", str(run / "lm" / "final"), "--vocab",
           str(run / "vocab"), "--port", str(port), "--threads", str(threads), *MODES[mode]]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client = Client(port)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server ({mode}) exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if client.call("GET", "/health", timeout=2)[0] == 200:
                return proc, client
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server ({mode}) did not start within 120 s")


def wav(seconds: float = 0.5, sr: int = 16000) -> bytes:
    from omnitok.io.audio import write_wav

    t = np.arange(int(seconds * sr)) / sr
    return write_wav((0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr)


def multipart(fields: dict[str, str], name: str, filename: str, data: bytes) -> tuple[bytes, str]:
    b = uuid.uuid4().hex
    out = io.BytesIO()
    for k, v in fields.items():
        out.write(f"--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode())
    out.write(f"--{b}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
              f"Content-Type: audio/wav\r\n\r\n".encode() + data + b"\r\n" + f"--{b}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={b}"


def endpoints() -> dict[str, tuple[str, bytes, str]]:
    """name -> (path, body, content type); each request is the same work (no seed: batchable)."""
    speech_wav = wav(0.5)
    form, ctype = multipart({"model": "omnitok"}, "file", "a.wav", speech_wav)
    j = lambda o: json.dumps(o).encode()  # noqa: E731
    return {
        "text->image": ("/v1/images/generations", j({"prompt": "the digit seven"}), "application/json"),
        "text->speech": ("/v1/audio/speech", j({"input": "seven", "seconds": 0.5}), "application/json"),
        "speech->text": ("/v1/audio/transcriptions", form, ctype),
        "chat text->text": ("/v1/chat/completions", j({"model": "omnitok", "max_tokens": 16, "messages": [
            {"role": "user", "content": "the digit"}]}), "application/json"),
        "text->video": ("/v1/videos/generations", j({"prompt": "a moving digit four"}), "application/json"),
    }


def cell(client: Client, req: tuple[str, bytes, str], n: int, c: int, max_seconds: float) -> dict[str, Any]:
    path, body, ctype = req
    t0 = time.perf_counter()
    lat: list[float] = []
    errors = skipped = 0

    def one(_: int) -> tuple[int, float] | None:
        if time.perf_counter() - t0 > max_seconds:
            return None
        s = time.perf_counter()
        try:
            status, _ = client.call("POST", path, body, ctype)
        except OSError:
            status = -1
        return status, time.perf_counter() - s

    with ThreadPoolExecutor(c) as pool:
        for r in pool.map(one, range(n)):
            if r is None:
                skipped += 1
                continue
            lat.append(r[1])
            errors += int(r[0] != 200)
    wall = time.perf_counter() - t0
    done = len(lat)
    return {"requests": done, "not_sent": skipped, "errors": errors, "seconds": round(wall, 3),
            "req_per_s": round(done / wall, 3), "p50_ms": round(1000 * float(np.percentile(lat, 50)), 1),
            "p99_ms": round(1000 * float(np.percentile(lat, 99)), 1)}


def train_debug(out: Path) -> Path:
    from omnitok.quickstart import run_pipeline

    npm = Path(os.environ.get("OMNITOK_TEST_NPM_DIR", Path.home() / ".cache" / "omnitok-test-npm"))
    os.environ.update(OMNITOK_NPM_DIR=str(npm), OMNITOK_ALLOW_APT="0")
    os.environ["OMNITOK_HOME"] = str(out / "home")
    run_pipeline("debug", out / "qs", progress=False)
    return out / "qs"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=None, help="quickstart output folder (default: train the debug quickstart)")
    ap.add_argument("--requests", type=int, default=48, help="requests per cell (N)")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=60.0, help="per cell: no new request after this")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each server")
    ap.add_argument("--only", default=None, help="comma-separated endpoint names (default: all)")
    ap.add_argument("--out", default=str(RESULTS / "serve_load_cpu.json"))
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    tmp = None
    if args.run:
        run, model_note = Path(args.run), f"the model in {args.run}"
    else:
        tmp = tempfile.TemporaryDirectory(prefix="serve-load-")
        t = time.perf_counter()
        run = train_debug(Path(tmp.name))
        model_note = f"the debug quickstart (trained here in {time.perf_counter() - t:.0f} s)"
    eps = endpoints()
    if args.only:
        eps = {k: v for k, v in eps.items() if k in args.only.split(",")}
    servers: dict[str, tuple[subprocess.Popen, Client]] = {}
    try:
        for m in MODES:
            servers[m] = start(run, m, args.threads)
        return measure(args, servers, eps, levels, model_note)
    finally:
        for proc, _ in servers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
        if tmp is not None:
            tmp.cleanup()


def measure(args: argparse.Namespace, servers: dict[str, tuple[subprocess.Popen, Client]],
            eps: dict[str, tuple[str, bytes, str]], levels: list[int], model_note: str) -> int:
    memory: dict[str, Any] = {}
    for m, (proc, client) in servers.items():
        for name, (path, body, ctype) in eps.items():  # warm-up: one request per endpoint
            status, out = client.call("POST", path, body, ctype)
            if status != 200:
                raise RuntimeError(f"warm-up {name} on {m}: {status} {out[:300]!r}")
        memory[m] = {"after_warmup_kib": rss_kib(proc.pid)}
    cells: list[dict[str, Any]] = []
    t_all = time.perf_counter()
    for rnd in range(args.rounds):
        for name, req in eps.items():
            for c in levels:
                k = (rnd + levels.index(c)) % len(MODES)
                order = list(MODES)[k:] + list(MODES)[:k]  # each mode goes first in turn
                for m in order:
                    res = cell(servers[m][1], req, args.requests, c, args.max_seconds)
                    cells.append({"round": rnd, "endpoint": name, "concurrency": c, "mode": m, **res})
                    print(f"round {rnd} {name:16s} c={c:<3d} {m:14s} {res['req_per_s']:7.2f} req/s  "
                          f"p50 {res['p50_ms']:8.1f} ms  p99 {res['p99_ms']:8.1f} ms  errors {res['errors']}",
                          file=sys.stderr, flush=True)
    for m, (proc, client) in servers.items():
        memory[m]["at_end_kib"] = rss_kib(proc.pid)
        health = json.loads(client.call("GET", "/health")[1])
        memory[m]["batches"] = health["batches"]
    summary = []
    for name in eps:
        for c in levels:
            row: dict[str, Any] = {"endpoint": name, "concurrency": c}
            for m in MODES:
                sel = [x for x in cells if x["endpoint"] == name and x["concurrency"] == c and x["mode"] == m]
                row[m] = {"req_per_s": statistics.median(x["req_per_s"] for x in sel),
                          "p50_ms": statistics.median(x["p50_ms"] for x in sel),
                          "p99_ms": statistics.median(x["p99_ms"] for x in sel),
                          "errors": sum(x["errors"] for x in sel), "requests": sum(x["requests"] for x in sel)}
            ratios = []
            for rnd in range(args.rounds):
                a = [x for x in cells if x["round"] == rnd and x["endpoint"] == name and x["concurrency"] == c]
                by = {x["mode"]: x["req_per_s"] for x in a}
                ratios.append([by["batched"] / by["one-at-a-time"], by["batched-no-wait"] / by["one-at-a-time"]])
            row["speedup_median_of_rounds"] = round(statistics.median(r[0] for r in ratios), 2)
            row["speedup_no_wait_median_of_rounds"] = round(statistics.median(r[1] for r in ratios), 2)
            summary.append(row)
    import fastapi
    import torch
    import uvicorn

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    result = {
        "benchmark": "serve_load", "model": model_note, "settings": vars(args) | {"modes": MODES},
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_end": os.getloadavg()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "fastapi": fastapi.__version__, "uvicorn": uvicorn.__version__},
        "seconds": round(time.perf_counter() - t_all, 1), "memory": memory, "summary": summary, "cells": cells,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print("| endpoint | C | one-at-a-time req/s (p50 / p99 ms) | batched, 10 ms wait | speed-up | "
          "batched, no wait | speed-up | errors |\n|---|---|---|---|---|---|---|---|")
    for r in summary:
        b, n, o = r["batched"], r["batched-no-wait"], r["one-at-a-time"]
        cellf = lambda x: f"{x['req_per_s']:.2f} ({x['p50_ms']:.0f} / {x['p99_ms']:.0f})"  # noqa: E731
        print(f"| {r['endpoint']} | {r['concurrency']} | {cellf(o)} | {cellf(b)} | "
              f"{r['speedup_median_of_rounds']:.2f}x | {cellf(n)} | {r['speedup_no_wait_median_of_rounds']:.2f}x | "
              f"{b['errors'] + n['errors'] + o['errors']} |")
    for m, mem in memory.items():
        print(f"{m}: VmRSS {mem['after_warmup_kib']['VmRSS'] / 1024:.0f} MiB after warm-up, "
              f"{mem['at_end_kib']['VmRSS'] / 1024:.0f} MiB at the end (peak {mem['at_end_kib']['VmHWM'] / 1024:.0f} "
              f"MiB); batches {mem['batches']}")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
