"""The serve tests' helpers: a real ``omnitok serve`` process on a free loopback port and a stdlib client."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

KEY = "test-key-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A running ``omnitok serve`` process and a tiny stdlib HTTP client for it."""

    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                key: str | None = KEY, timeout: float = 120) -> tuple[int, dict[str, str], bytes]:
        h = dict(headers or {})
        if key is not None:
            h["Authorization"] = f"Bearer {key}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def post_json(self, path: str, obj: Any, **kw: Any) -> tuple[int, dict[str, str], bytes]:
        return self.request("POST", path, json.dumps(obj).encode(), {"Content-Type": "application/json"}, **kw)

    def get_json(self, path: str, **kw: Any) -> tuple[int, Any]:
        status, _, body = self.request("GET", path, **kw)
        return status, json.loads(body)


def start_server(run: Path, *extra: str) -> Server:
    port = free_port()
    log = run.parent / f"server-{port}.log"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "omnitok.cli", "serve", "--ckpt", str(run / "lm" / "final"), "--vocab",
           str(run / "vocab"), "--port", str(port), "--threads", "1", *extra]
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    server = Server(proc, port, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"omnitok serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if server.request("GET", "/health", key=None, timeout=2)[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"omnitok serve did not answer within 90 s: {log.read_text()[-2000:]}")


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
