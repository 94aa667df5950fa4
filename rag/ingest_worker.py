"""Load + chunk files in separate processes that stream chunks to the embedding process.

Why processes: PDF text extraction (pypdf, pure Python) is ~20 ms of CPU per page. In a thread
of the embedding process it holds the GIL against the model's Python code and, on 2 cores,
preempts torch's OpenMP threads, which then wait for each other at every barrier (measured: an
encode that takes 4.3 s alone took 13.2 s next to a pypdf loop). Running the loaders at low
priority (nice 19) made it worse on a whole ingest: starved, they stay runnable for the whole
run and keep stealing slices from torch (3 PDFs: embedding 50.7 s vs 26.0 s). So the library
pauses these processes (SIGSTOP) while the model computes a batch and lets them run at full speed
(both cores) while it waits for chunks or saves: loading and embedding alternate instead of
fighting. Workers only need pypdf and the tokenizer (``tokenizers``, the model's own
``tokenizer.json``), not torch.

Protocol (pickle over the child's stdin/stdout): the parent sends one config dict, then jobs
``(key, path, size, known_hash)`` one at a time, then ``None``; the child answers each job with
one tagged tuple (see ``prepare``). A dead parent closes the pipes and the child exits.

    python -m rag.ingest_worker        # started by rag.library, not by hand
"""
from __future__ import annotations

import hashlib
import os
import pickle
import sys
from pathlib import Path


def prepare(path: Path, size: int, known_hash: str | None, max_file_mb: float, chunker) -> tuple:
    """Load + chunk one file. ("same", hash) | ("ok", hash, doc-without-blocks, drafts) | ("fail", reason)."""
    from rag import loaders

    try:
        if max_file_mb and size > max_file_mb * 1024 * 1024:
            raise loaders.FileTooLarge(path, f"{size / 1048576:.1f} MB > {max_file_mb:g} MB")
        data = path.read_bytes()
        h = hashlib.sha256(data).hexdigest()
        if known_hash and known_hash == h:
            return ("same", h)
        doc = loaders.load(path, max_file_mb, data=data)
        drafts = chunker.chunk(doc)
        if not drafts:
            raise loaders.EmptyFile(path)
        return ("ok", h, doc, drafts)
    except loaders.LoaderError as exc:
        return ("fail", str(exc))
    except OSError as exc:
        return ("fail", f"{path.name}: {exc.strerror or exc}")
    except Exception as exc:  # a loader bug must not stop the batch
        return ("fail", f"{path.name}: could not be read ({type(exc).__name__}: {exc})")


def token_counter(model_path: str):
    """count(texts) -> word pieces per text (no special tokens), from the model's tokenizer files."""
    tj = Path(model_path) / "tokenizer.json"
    if tj.exists():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tj))
        tok.no_truncation()
        tok.no_padding()

        def count(texts: list[str]) -> list[int]:
            if not texts:
                return []
            return [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)]

        return count
    from transformers import AutoTokenizer  # a model without a fast tokenizer file

    slow = AutoTokenizer.from_pretrained(model_path)

    def count_slow(texts: list[str]) -> list[int]:
        if not texts:
            return []
        enc = slow(list(texts), add_special_tokens=False, truncation=False, return_attention_mask=False,
                   return_token_type_ids=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    return count_slow


def _die_with_parent() -> None:
    try:  # Linux: SIGKILL this worker when the parent dies (also mid-extraction)
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def main() -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _die_with_parent()
    inp = sys.stdin.buffer
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but results on the pipe
    try:
        cfg = pickle.load(inp)
    except EOFError:
        return 0
    try:
        if int(cfg.get("nice", 0)):
            os.nice(int(cfg.get("nice", 0)))
    except (OSError, ValueError):
        pass
    from rag.chunking import Chunker

    chunker = Chunker(token_counter(cfg["model_path"]), cfg["window"])
    out.write(pickle.dumps(("ready",), protocol=pickle.HIGHEST_PROTOCOL))
    out.flush()
    while True:
        try:
            job = pickle.load(inp)
        except EOFError:
            return 0
        if job is None:
            return 0
        key, path, size, known_hash = job
        res = prepare(Path(path), size, known_hash, cfg.get("max_file_mb", 50.0), chunker)
        if res[0] == "ok":
            doc = res[2]
            doc.blocks = []  # the parent needs kind, pages and contents pages only
        try:
            out.write(pickle.dumps((key, res), protocol=pickle.HIGHEST_PROTOCOL))
            out.flush()
        except (BrokenPipeError, OSError):
            return 0


if __name__ == "__main__":
    sys.exit(main())
