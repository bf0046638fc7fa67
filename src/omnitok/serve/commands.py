"""``omnitok serve``: the model behind an OpenAI-compatible HTTP API and a web page (docs/serving.md).

::

    omnitok serve --ckpt runs/lm/final --vocab runs/vocab            # http://127.0.0.1:8000/
    omnitok serve --ckpt quickstart/lm/final --api-key "$KEY" --port 9000

Needs the ``serve`` extra (``pip install 'omnitok[serve]'``: FastAPI, uvicorn, python-multipart). Binds the
loopback interface unless ``--host`` says otherwise; set ``--api-key`` before binding any other interface.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="model folder, training checkpoint or run folder")
    parser.add_argument("--vocab", default=None, help="vocabulary folder (default: recorded by the checkpoint)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", default=None,
                        help="require 'Authorization: Bearer KEY' on /v1 (also: the OMNITOK_API_KEY variable)")
    parser.add_argument("--model-name", default="omnitok", help="the model id clients name (GET /v1/models)")
    parser.add_argument("--max-batch", type=int, default=16,
                        help="most rows in one generate batch (1 = serve requests one at a time)")
    parser.add_argument("--max-wait-ms", type=float, default=10.0,
                        help="how long a request waits for others to join its batch")
    parser.add_argument("--max-body-mb", type=float, default=8.0, help="largest request body (JSON or upload)")
    parser.add_argument("--max-n", type=int, default=4, help="most outputs per request (n)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace) -> int:
    import os

    try:
        import uvicorn

        from omnitok.serve.app import create_app
    except ImportError as e:
        print(f"omnitok serve: needs the serve extra ({e.name} is missing): pip install 'omnitok[serve]'",
              file=sys.stderr)
        return 2
    import torch

    from omnitok.serve.engine import Batcher, load_served_model
    from omnitok.serve.protocol import Limits

    api_key = args.api_key or os.environ.get("OMNITOK_API_KEY") or None
    if not 0 < args.port < 65536:
        raise ValueError(f"--port: expected 1 to 65535, got {args.port}")
    if args.max_batch < 1 or args.max_n < 1 or args.max_n > args.max_batch:
        raise ValueError(f"--max-n ({args.max_n}) must be from 1 to --max-batch ({args.max_batch})")
    if args.max_wait_ms < 0 or args.max_body_mb <= 0:
        raise ValueError("--max-wait-ms must be >= 0 and --max-body-mb > 0")
    if not _loopback(args.host) and api_key is None:
        print(f"omnitok serve: warning: binding {args.host} without --api-key: anyone who can reach this machine "
              "can use the model", file=sys.stderr)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    served = load_served_model(args.ckpt, args.vocab, args.device, args.model_name)
    batcher = Batcher(served, max_batch=args.max_batch, max_wait=args.max_wait_ms / 1000)
    limits = Limits(max_body_bytes=int(args.max_body_mb * (1 << 20)), max_n=args.max_n)
    app = create_app(served, batcher, api_key=api_key, limits=limits)
    print(f"omnitok serve: {served.ckpt} ({', '.join(served.modalities)}) as '{served.name}' on "
          f"http://{args.host}:{args.port}/ ({'API key required' if api_key else 'no API key'}; batches of up to "
          f"{args.max_batch} rows, {args.max_wait_ms:g} ms wait)", file=sys.stderr, flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    finally:
        batcher.close()
    return 0


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
