"""Real parts for the Foundry Local tests: the launcher process and a misbehaving HTTP server.

Launcher runs scripts/foundry_local.py, which runs the real Foundry Local runtime and web service from foundry-local-sdk (in
.venv-foundry) with the provisioned SmolLM2 build, on a free loopback port, with its own HOME and
data folder. Anything missing makes the tests FAIL with a message that says how to provision it.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = REPO_ROOT / "scripts" / "foundry_local.py"
FOUNDRY_PYTHON = REPO_ROOT / ".venv-foundry" / "bin" / "python"
READY_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Launcher:
    """One real Foundry Local service (scripts/foundry_local.py) in a child process."""

    root: Path  # holds home/, data/, state.json, launcher.log
    model_dir: Path
    port: int = 0
    proc: subprocess.Popen | None = None
    base_url: str = ""
    model: str = ""
    alias: str = ""
    lines: list[str] = field(default_factory=list)

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def start(self, timeout: float = READY_TIMEOUT) -> "Launcher":
        if not FOUNDRY_PYTHON.exists():
            pytest.fail(f"{FOUNDRY_PYTHON} is missing: run `make foundry-setup` (foundry-local-sdk==2.2.1).")
        home = self.root / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, HOME=str(home), LRC_CACHE_DIR=str(self.root / "cache"),
                   PYTHONUNBUFFERED="1")
        env.pop("FOUNDRY_BASE_URL", None)
        cmd = [sys.executable, str(LAUNCHER), "--model", str(self.model_dir), "--port", str(self.port),
               "--data-dir", str(self.root / "data"), "--state-file", str(self.state_file), "--stop-with-parent"]
        self.lines = []
        log = open(self.root / "launcher.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=env, cwd=REPO_ROOT,
                                     text=True, start_new_session=True)
        log.close()
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                if line.startswith("READY "):
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.root / "launcher.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"Foundry Local launcher did not become ready (exit {self.proc.returncode}).\n"
                            f"stdout: {self.lines}\nstderr tail:\n{tail}")
        fields = dict(part.split("=", 1) for part in self.lines[-1].split()[1:])
        self.base_url, self.model, self.alias = fields["base_url"], fields["model"], fields.get("alias", "")
        return self

    def kill(self) -> None:
        """SIGKILL: the service vanishes without any goodbye (a crash)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait for a clean exit; SIGKILL the process group if it hangs."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


# --------------------------------------------------------------------------------------------
# FaultServer
# --------------------------------------------------------------------------------------------
# A tiny real HTTP server on 127.0.0.1 that misbehaves on purpose, one fault per model name.
#
# It is a real fault source (real sockets, real bytes on the wire), used for faults a healthy Foundry
# Local never produces on demand: garbled or cut-off SSE, HTTP 5xx, a slow first byte.
#
#     model "garbage"     200 + a stream whose second chunk is not JSON
#     model "not-sse"     200 + a line that is not SSE at all
#     model "truncated"   200 chunked, one good chunk, then the socket is closed mid-body
#     model "no-done"     200, two good chunks, body ends cleanly but without finish_reason / [DONE]
#     model "http500"     500 with an OpenAI-style error body
#     model "http503"     503 with a plain-text body
#     model "slow"        headers, then nothing for ``slow_seconds``
#     model "slow-headers" nothing at all (not even headers) for ``slow_seconds``
#     model "ok"          a short well-formed answer ("Hello there.") with usage
#     model "strict"      400 when the request has stream_options, else "Hello there." without usage
#     model "drop-once"   the first request's connection is closed before any response, then as "ok"
#     model "drop"        every request's connection is closed before any response



MODELS = ["ok", "garbage", "not-sse", "truncated", "no-done", "http500", "http503", "slow", "slow-headers", "strict",
          "drop-once", "drop"]


def _chunk(text: str, finish: str | None = None) -> bytes:
    body = {"id": "x", "object": "chat.completion.chunk", "model": "fault",
            "choices": [{"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}]}
    return f"data: {json.dumps(body)}\n\n".encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "FaultServer._Server"

    def log_message(self, *args):  # quiet
        pass

    def _json(self, status: int, payload) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        if self.path.endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in MODELS]})
        else:
            self._json(404, {"error": {"message": "no such route"}})

    def _sse_headers(self, chunked: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
        self.end_headers()

    def _write_chunked(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append(body)
        model = body.get("model")
        if model == "drop" or (model == "drop-once" and sum(
                r.get("model") == "drop-once" for r in self.server.requests) == 1):
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if model == "drop-once":
            model = "ok"
        if model == "http500":
            self._json(500, {"error": {"message": "internal inference error", "type": "server_error"}})
        elif model == "http503":
            data = b"Service Unavailable"
            self.send_response(503)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif model == "garbage":
            self._sse_headers(chunked=False)
            self.wfile.write(_chunk("Hello"))
            self.wfile.write(b'data: {"choices": [{"delta": {"content": "wor\n\n')
            self.wfile.flush()
            time.sleep(0.2)
            self.close_connection = True
        elif model == "not-sse":
            self._sse_headers(chunked=False)
            self.wfile.write(_chunk("Hello"))
            self.wfile.write(b"<html>proxy error</html>\n\n")
            self.close_connection = True
        elif model == "truncated":
            self._sse_headers(chunked=True)
            self._write_chunked(_chunk("Hello"))
            self._write_chunked(_chunk(" wor"))
            time.sleep(0.1)
            self.connection.shutdown(socket.SHUT_RDWR)  # gone without the terminating chunk
            self.close_connection = True
        elif model == "no-done":
            self._sse_headers(chunked=False)
            self.wfile.write(_chunk("Hello") + _chunk(" there"))
            self.close_connection = True
        elif model in ("slow", "slow-headers"):
            if model == "slow":
                self._sse_headers(chunked=True)
            self.server.slow_started.set()
            self.server.stop_slow.wait(self.server.slow_seconds)
            if model == "slow-headers":
                self._sse_headers(chunked=True)
            try:
                self._write_chunked(_chunk("late"))
                self._write_chunked(b"data: [DONE]\n\n")
                self._write_chunked(b"")
            except OSError:
                pass
        elif model == "strict" and "stream_options" in body:
            self._json(400, {"error": {"message": "Unrecognized request argument: stream_options",
                                       "type": "invalid_request_error"}})
        elif model in ("ok", "strict"):
            self._sse_headers(chunked=True)
            for piece in ("Hello", " there", "."):
                self._write_chunked(_chunk(piece))
            self._write_chunked(_chunk("", "stop"))
            if model == "ok":
                usage = {"id": "x", "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3,
                                                             "total_tokens": 14}}
                self._write_chunked(f"data: {json.dumps(usage)}\n\n".encode())
            self._write_chunked(b"data: [DONE]\n\n")
            self._write_chunked(b"")
        else:
            self._json(404, {"error": {"message": f"model '{model}' not found", "code": "model_not_found"}})


class FaultServer:
    """Start with ``with FaultServer() as srv: srv.base_url``; binds a free loopback port."""

    class _Server(ThreadingHTTPServer):
        daemon_threads = True
        requests: list
        slow_seconds: float
        slow_started: threading.Event
        stop_slow: threading.Event

        def handle_error(self, request, client_address):
            """Clients hang up on these faults (that is what the tests make them do): no traceback noise."""

    def __init__(self, slow_seconds: float = 30.0):
        self.httpd = self._Server(("127.0.0.1", 0), _Handler)
        self.httpd.requests = []
        self.httpd.slow_seconds = slow_seconds
        self.httpd.slow_started = threading.Event()
        self.httpd.stop_slow = threading.Event()
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def requests(self) -> list:
        return self.httpd.requests

    def __enter__(self) -> "FaultServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.stop_slow.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
