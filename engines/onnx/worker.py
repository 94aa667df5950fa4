"""The generation worker process of the in-process engine (``engines.onnx.engine``).

onnxruntime-genai holds the GIL while it computes, so generation cannot share a process with the
app's event loop. The engine starts this module as a child process (``python -m engines.onnx.worker
--fd N``) and talks to it over a socket pair with pickled tuples:

parent -> worker
    ("start", rid, model_path, messages, opts)   opts: max_new_tokens, temperature, top_p, stop, seed,
                                                 repetition_penalty
    ("count", rid, model_path, messages)
    ("encode", rid, model_path, messages)        the prompt's token ids (the in-browser page's prompt)
    ("cancel", rid)
    ("status", rid)
    ("shutdown",)
worker -> parent
    ("ready", pid)
    ("started", rid, prompt_tokens, max_length)
    ("piece", rid, text)
    ("done", rid, finish_reason, completion_tokens)   finish_reason: stop | length | cancelled
    ("count", rid, n)
    ("encode", rid, [token ids])
    ("status", rid, {"active": n, "waiting": n, "models": [paths]})
    ("error", rid, kind, message, extra)             kind: PromptTooLong | ModelLoad | BadRequest | GenerationFailed

Several requests run at once, round-robin with about equal time each: per round every active request
gets one prompt chunk, or new tokens for up to ``time_slice`` seconds (~0.1 s). Commands are read
after every step, so a token count, a cancel or a new request waits at most one step. Models are
loaded once and shared by all requests.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection


@dataclass
class LoadedModel:
    path: str
    model: object
    tokenizer: object
    context_length: int
    eos: set[int]
    active: int = 0


@dataclass
class Request:
    rid: int
    lm: LoadedModel
    ids: list[int]
    opts: dict
    max_length: int
    stop: list[str]
    gen: object = None
    stream: object = None
    pos: int = 0  # prompt tokens already fed
    new_tokens: int = 0
    held: str = ""  # decoded text not sent yet (could be the start of a stop string)
    pieces: list[str] = field(default_factory=list)


class Worker:
    def __init__(self, conn: Connection, max_active: int, prompt_chunk: int, time_slice: float = 0.1,
                 threads: int = 0):
        import onnxruntime_genai as og

        self.og = og
        with_suppress(lambda: og.disable_telemetry_events())
        self.conn = conn
        self.max_active = max_active
        self.prompt_chunk = prompt_chunk
        self.time_slice = time_slice
        self.threads = threads  # the model's intra-op threads (0: the library's own choice)
        self.stopping = False
        self.models: dict[str, LoadedModel] = {}
        self.active: list[Request] = []
        self.waiting: deque[Request] = deque()

    # ------------------------------------------------------------ plumbing
    def send(self, *msg) -> None:
        self.conn.send(msg)

    def run(self) -> None:
        self.send("ready", os.getpid())
        try:
            while not self.stopping:
                if not self.active and not self.waiting:
                    self.stopping = not self.handle(self.conn.recv())
                self.drain()
                self.admit()
                self.round()
        except (EOFError, OSError):
            return  # the app went away

    def drain(self) -> None:
        """Handle every command already sent (cheap: counts, status, cancels, queued starts)."""
        while not self.stopping and self.conn.poll(0):
            self.stopping = not self.handle(self.conn.recv())

    def round(self) -> None:
        """Give every active request about the same time: one prompt chunk, or new tokens for up to
        ``time_slice`` seconds. Alone, a request just runs (the loop comes straight back to it).
        Commands are read after every step, so a token count or a cancel waits one step at most."""
        shared = len(self.active) > 1
        for req in list(self.active):
            start = time.perf_counter()
            while req in self.active and not self.stopping:
                self.step(req)
                self.drain()
                if not shared or req.pos < len(req.ids) or time.perf_counter() - start >= self.time_slice:
                    break

    def handle(self, msg: tuple) -> bool:
        kind = msg[0]
        if kind == "shutdown":
            return False
        if kind == "start":
            self.start(*msg[1:])
        elif kind == "count":
            self.count(*msg[1:])
        elif kind == "encode":
            self.tokens(*msg[1:])
        elif kind == "cancel":
            self.cancel(msg[1])
        elif kind == "status":
            self.send("status", msg[1], {"active": len(self.active), "waiting": len(self.waiting),
                                         "models": list(self.models)})
        return True

    # ------------------------------------------------------------ models and prompts
    def load(self, path: str) -> LoadedModel:
        if path in self.models:
            return self.models[path]
        for key, lm in list(self.models.items()):  # keep memory bounded: drop idle models
            if lm.active == 0:
                del self.models[key]
        og = self.og
        config = og.Config(path)
        if self.threads:
            config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": self.threads}}}}))
        model = og.Model(config)
        tokenizer = og.Tokenizer(model)
        with open(f"{path}/genai_config.json") as fh:
            cfg = json.load(fh)
        ctx = int(cfg.get("model", {}).get("context_length") or cfg.get("search", {}).get("max_length") or 2048)
        try:
            eos = {int(t) for t in tokenizer.eos_token_ids}
        except Exception:  # noqa: BLE001 - older builds: fall back to the config
            raw = cfg.get("model", {}).get("eos_token_id", [])
            eos = set(raw if isinstance(raw, list) else [raw])
        lm = LoadedModel(path, model, tokenizer, ctx, eos)
        self.models[path] = lm
        return lm

    def encode(self, lm: LoadedModel, messages: list[dict]) -> list[int]:
        prompt = lm.tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)
        return [int(t) for t in lm.tokenizer.encode(prompt)]

    def prepare(self, rid: int, path: str, messages: list[dict]) -> tuple[LoadedModel, list[int]] | None:
        try:
            lm = self.load(path)
        except Exception as exc:  # noqa: BLE001
            self.send("error", rid, "ModelLoad", f"Could not load the model in {path}: {exc}", {})
            return None
        try:
            return lm, self.encode(lm, messages)
        except Exception as exc:  # noqa: BLE001
            self.send("error", rid, "BadRequest", f"The model's chat template could not format these messages: {exc}", {})
            return None

    def count(self, rid: int, path: str, messages: list[dict]) -> None:
        got = self.prepare(rid, path, messages)
        if got:
            self.send("count", rid, len(got[1]))

    def tokens(self, rid: int, path: str, messages: list[dict]) -> None:
        got = self.prepare(rid, path, messages)
        if got:
            self.send("encode", rid, got[1])

    def start(self, rid: int, path: str, messages: list[dict], opts: dict) -> None:
        got = self.prepare(rid, path, messages)
        if not got:
            return
        lm, ids = got
        max_new = int(opts.get("max_new_tokens") or 1)
        if len(ids) + max_new > lm.context_length:
            self.send("error", rid, "PromptTooLong",
                      f"The prompt takes {len(ids)} tokens and the answer may take {max_new} more, "
                      f"but the model's context holds {lm.context_length} tokens.",
                      {"prompt_tokens": len(ids), "context_length": lm.context_length})
            return
        max_length = min(len(ids) + max_new, lm.context_length)
        stop = [s for s in opts.get("stop") or [] if s]
        lm.active += 1
        self.waiting.append(Request(rid, lm, ids, opts, max_length, stop))

    def admit(self) -> None:
        while self.waiting and len(self.active) < self.max_active:
            req = self.waiting.popleft()
            try:
                og = self.og
                params = og.GeneratorParams(req.lm.model)
                search = {"max_length": req.max_length}
                temperature = float(req.opts.get("temperature") or 0.0)
                if temperature > 0:
                    search.update(do_sample=True, temperature=temperature,
                                  top_p=float(req.opts.get("top_p") or 1.0), top_k=0)
                    if req.opts.get("seed") is not None:
                        search["random_seed"] = int(req.opts["seed"])
                else:
                    search.update(do_sample=False)
                penalty = float(req.opts.get("repetition_penalty") or 1.0)
                if penalty != 1.0:
                    search["repetition_penalty"] = penalty
                params.set_search_options(**search)
                req.gen = og.Generator(req.lm.model, params)
                req.stream = req.lm.tokenizer.create_stream()
            except Exception as exc:  # noqa: BLE001
                self.fail(req, exc)
                continue
            self.send("started", req.rid, len(req.ids), req.max_length)
            self.active.append(req)

    # ------------------------------------------------------------ generation
    def step(self, req: Request) -> None:
        try:
            if req.pos < len(req.ids):
                chunk = req.ids[req.pos:req.pos + self.prompt_chunk]
                req.gen.append_tokens(chunk)
                req.pos += len(chunk)
                return
            if req.gen.is_done():
                self.finish(req, "length")
                return
            req.gen.generate_next_token()
            token = int(req.gen.get_next_tokens()[0])
            if token in req.lm.eos:
                self.finish(req, "stop")
                return
            req.new_tokens += 1
            text = req.stream.decode(token)
            if text and self.emit(req, text):
                return
            if req.new_tokens >= int(req.opts.get("max_new_tokens") or 1) or req.gen.is_done():
                self.finish(req, "length")
        except Exception as exc:  # noqa: BLE001
            self.fail(req, exc)

    def emit(self, req: Request, text: str) -> bool:
        """Send text, holding back what might begin a stop string. True when a stop string ended it."""
        buf = req.held + text
        if req.stop:
            hits = [i for i in (buf.find(s) for s in req.stop) if i >= 0]
            if hits:
                req.held = ""
                if min(hits) > 0:
                    self.send("piece", req.rid, buf[:min(hits)])
                self.finish(req, "stop")
                return True
            keep = 0
            for s in req.stop:
                for k in range(min(len(s) - 1, len(buf)), 0, -1):
                    if buf.endswith(s[:k]):
                        keep = max(keep, k)
                        break
            req.held = buf[len(buf) - keep:] if keep else ""
            buf = buf[:len(buf) - keep] if keep else buf
        if buf:
            self.send("piece", req.rid, buf)
        return False

    def drop(self, req: Request) -> None:
        if req in self.active:
            self.active.remove(req)
        elif req in self.waiting:
            self.waiting.remove(req)
        req.gen = None  # frees its KV cache
        req.lm.active -= 1

    def finish(self, req: Request, reason: str) -> None:
        if req.held and reason != "cancelled":
            self.send("piece", req.rid, req.held)
        self.drop(req)
        self.send("done", req.rid, reason, req.new_tokens)

    def fail(self, req: Request, exc: Exception) -> None:
        self.drop(req)
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        self.send("error", req.rid, "GenerationFailed", f"Generation failed: {detail}", {})

    def cancel(self, rid: int) -> None:
        for req in [*self.active, *self.waiting]:
            if req.rid == rid:
                self.finish(req, "cancelled")
                return


def with_suppress(fn) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="generation worker (started by engines.onnx.engine)")
    ap.add_argument("--fd", type=int, required=True, help="socket file descriptor shared with the app")
    ap.add_argument("--max-active", type=int, default=4)
    ap.add_argument("--prompt-chunk", type=int, default=128)
    ap.add_argument("--nice", type=int, default=0, help="lower this process's priority by N before the model loads")
    ap.add_argument("--threads", type=int, default=0, help="threads that run the model (0: the library's choice)")
    args = ap.parse_args(argv)
    if args.nice > 0 and hasattr(os, "nice"):
        os.nice(args.nice)  # its generation threads inherit it
    conn = Connection(args.fd)
    try:
        Worker(conn, args.max_active, args.prompt_chunk, threads=args.threads).run()
    except Exception as exc:  # noqa: BLE001 - say why before dying; the engine reports the exit
        print(f"onnx worker crashed: {exc!r}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
