"""`python -m rag serve [--host 127.0.0.1] [--port 8001]`: the OpenAI-compatible API (rag.api) on its own.

Binds 127.0.0.1 unless told otherwise; any other address needs keys: LRC_API_KEY set (every /v1 request
must then carry it as `Authorization: Bearer KEY`) or LRC_AUTH=password (each user's own key, `python -m
rag users key NAME`), or the command refuses to start (exit 2).
"""
from __future__ import annotations

import argparse
import ipaddress
import socket
import sys

HELP = "serve the OpenAI-compatible API (/v1/models, /v1/chat/completions, /v1/embeddings)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only; "
                                                       "any other needs LRC_API_KEY)")
    p.add_argument("--port", type=int, default=8001, help="port (default 8001)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level (default info)")


def is_loopback(host: str) -> bool:
    """True when ``host`` only ever means this machine (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def run(args: argparse.Namespace) -> int:
    from rag.api.access import keys_required
    from rag.config import settings

    if not is_loopback(args.host) and not keys_required():
        print(f"error: refusing to serve on {args.host}: the API would answer anyone who can reach this "
              "machine with no key. Set LRC_API_KEY (clients then send 'Authorization: Bearer KEY') or "
              "LRC_AUTH=password (each user's own key), or bind 127.0.0.1.", file=sys.stderr)
        return 2
    import uvicorn

    from rag.api import create_app

    shown = f"[{args.host}]" if ":" in args.host else args.host
    key = ("each user's API key required" if settings().auth == "password"
           else "API key required" if keys_required() else "no API key required")
    print(f"Local RAG Chat API: http://{shown}:{args.port}/v1 ({key}); loading the library...", flush=True)
    uvicorn.run(create_app(host=args.host), host=args.host, port=args.port, log_level=args.log_level,
                timeout_graceful_shutdown=5)
    return 0
