"""Keep the library current with folders: ``Watcher`` follows them with ``watchfiles`` (inotify / FSEvents /
ReadDirectoryChangesW through the Rust ``notify`` crate; nothing polled by our code) and turns what
changed into library actions.

- On start, and whenever a missing folder comes back, one full sync of the folder: ``Library.ingest``
  of the folder (its size/mtime/hash planning skips what is unchanged, so this is cheap) adds what
  changed while nobody watched, then what the library holds under the folder that no longer exists is
  removed. The sync runs once the watch itself has started, so nothing changed in between is missed.
- Then each batch of changes (``watchfiles`` coalesces a burst: it yields once no change came for
  ``step`` ms, at the latest after ``debounce`` ms; what arrives while a batch is being indexed is the
  next batch): paths that exist are ingested in one run (files or folders: added, changed, the new
  name of a rename), then paths that are gone are removed, only what the library holds under them.
  Ingest first, so a renamed or moved file finds its old copy and re-uses its vectors
  (``rag.ingest.reuse``: nothing embedded). Temp files, partial downloads and hidden files never count
  (``filters``).
- A watched folder that disappears is reported (state ``missing``) and nothing under it is removed
  (removals wait ``settle`` seconds and are dropped when the folder itself has gone meanwhile: ``rm -rf``
  deletes the files before their folder). Its documents stay searchable; when it comes back it is
  synced and watched again.

Each ingest is a job of the library's queue run in the watcher's thread (``rag.jobs.here``): the Library
view and ``rag jobs`` show it, and a Cancel stops it (the folder stays watched; it is not retried). The chat
server's watcher (``beside_answers``) has a sync and a large batch ingested by a process of their own at
LRC_BACKGROUND_NICE (10), so answers keep the cores.

One ingest at a time: ``Library.ingest`` and ``Library.remove`` serialise writers (chat uploads,
``rag index`` in this process). ``run()`` blocks (``rag watch``); ``start()`` runs it in a thread (the
chat server, ``LRC_WATCH``) and ``stop()`` ends it. ``status()`` says how each folder is.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

import watchfiles

from rag.ingest import IngestReport
from rag.jobs.here import IngestCancelled, ingest_beside_answers, ingest_here
from rag.library import Library
from rag.watch.filters import ChangeFilter, root_of

log = logging.getLogger("local-rag-chat.watch")
Say = Callable[[str], None]
RETRY_S = 30.0  # default: a folder whose sync or batch failed is synced again after this long


def folder_key(folder: str | Path) -> Path:
    """A folder as the watcher and the library name it: absolute, links resolved (``~`` expanded)."""
    return Path(folder).expanduser().absolute().resolve()


@dataclass(frozen=True)
class FolderState:
    """A watched folder as people see it: ``state`` is "starting", "syncing", "watching", "missing",
    "error" (the library failed: ``last`` says why; synced again later) or "stopped"; ``files``: the
    library's documents under it; ``last``: what happened last."""

    path: str
    state: str = "starting"
    files: int = 0
    last: str = ""
    since: float = 0.0  # when it entered this state (time.time())


class Watcher:
    def __init__(self, folders: Iterable[str | Path], library: Library | Callable[[], Library],
                 say: Say | None = None, debounce_ms: int = 1600, step_ms: int = 50, check_s: float = 1.0,
                 settle_s: float = 0.5, retry_s: float = RETRY_S, beside_answers: bool = False):
        """``library``: the library, or how to open it (in the watcher's thread). ``say``: hears one line
        per thing done ("added /docs/a.md"). ``check_s``: how often a folder is checked for having gone
        or come back; ``retry_s``: when a failed sync is tried again. ``beside_answers`` (the chat server's
        watcher): a sync, and a batch larger than LRC_INGEST_CHILD_MB, are ingested by a process of their
        own at LRC_BACKGROUND_NICE (``rag.jobs.here.ingest_beside_answers``), so the server's answers keep the
        cores."""
        self.beside_answers = beside_answers
        self.roots = list(dict.fromkeys(folder_key(f) for f in folders))  # replaced whole (add, discard)
        self._library = library
        self.say = say or log.info
        self.debounce_ms, self.step_ms, self.check_s, self.settle_s = debounce_ms, step_ms, check_s, settle_s
        self.retry_s = retry_s
        self._states = {r: FolderState(str(r), since=time.time()) for r in self.roots}
        self._stop = threading.Event()
        self._retry: dict[Path, float] = {}  # a folder whose sync failed: not before (time.monotonic())
        self._thread: threading.Thread | None = None
        self.runs = 0  # ingest runs made (a burst of changes is one, or a few)
        self.batches = 0  # batches of changes handled

    # ------------------------------------------------------------------ running
    def add(self, folder: str | Path) -> Path:
        """Watch one more folder (synced, then watched, within ``check_s``); its key (absolute, resolved)."""
        root = folder_key(folder)
        if root not in self._states:
            self._states[root] = FolderState(str(root), since=time.time())
            self.roots = [*self.roots, root]
        return root

    def discard(self, folder: str | Path) -> None:
        """Stop watching a folder (within ``check_s``); its documents stay in the library."""
        root = folder_key(folder)
        self.roots = [r for r in self.roots if r != root]
        self._states.pop(root, None)

    @property
    def library(self) -> Library:
        if not isinstance(self._library, Library):
            self._library = self._library()
        return self._library

    def start(self) -> "Watcher":
        """Run in a background thread (daemon: it never holds up the process's exit)."""
        self._thread = threading.Thread(target=self._run_logged, name="lrc-watch", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        """Its thread (``start``) is alive."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop watching (an ingest under way finishes first) and wait up to ``timeout`` seconds."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run_logged(self) -> None:
        try:
            self.run()
        except Exception:  # never silent: the chat's log says why watching stopped
            log.exception("watching %s stopped", ", ".join(map(str, self.roots)))

    def run(self) -> None:
        """Sync, then watch until ``stop()`` (or Ctrl-C in the main thread: KeyboardInterrupt)."""
        try:
            while not self._stop.is_set():
                present = [r for r in self.roots if r.is_dir()]
                for r in self.roots:
                    if r not in present:
                        self._missing(r)
                if not present:
                    self._stop.wait(self.check_s)
                    continue
                try:
                    self._watch(present)
                except FileNotFoundError:  # a folder went just before the watch began: look again
                    self._stop.wait(self.check_s)
        finally:
            for r in self.roots:
                self._set(r, "stopped")

    def _watch(self, present: list[Path]) -> None:
        changes = watchfiles.watch(*present, watch_filter=ChangeFilter(self.roots), debounce=self.debounce_ms,
                                   step=self.step_ms, stop_event=self._stop, rust_timeout=int(self.check_s * 1000),
                                   yield_on_timeout=True)
        for batch in changes:  # the first one comes once the watch has started: then sync
            for r in present:
                state = self._states.get(r)
                if state and state.state != "watching" and r.is_dir() and time.monotonic() >= self._retry.get(r, 0):
                    self._guarded([r], self.sync, r)
            if batch:
                self._guarded(present, self.apply, batch)
            if [r for r in self.roots if r.is_dir()] != present:
                return  # a folder went or came back: watch the ones there are

    def _guarded(self, roots: list[Path], step: Callable, arg) -> None:
        """Run a sync or a batch; when the library fails (a database that went away, a full disk), the
        folders are in state "error" and synced again after ``retry_s`` (what changed meanwhile included)."""
        try:
            step(arg)
        except IngestCancelled:  # someone cancelled the run (the Library view, `rag jobs cancel`): not retried
            self.say("CANCELLED indexing (the files indexed before stay; later changes are followed)")
            for r in roots:
                self._set(r, "watching", "indexing cancelled: the files indexed before stay; later changes are followed")
        except Exception as exc:
            log.warning("watching failed: %s", exc, exc_info=True)
            self.say(f"FAILED    {exc} (trying again in {self.retry_s:.0f} s)")
            for r in roots:
                self._retry[r] = time.monotonic() + self.retry_s
                self._set(r, "error", f"{exc} (trying again in {self.retry_s:.0f} s)")

    def _missing(self, root: Path) -> None:
        if root in self._states and self._states[root].state != "missing":
            self.say(f"MISSING   {root} (its documents stay in the library until it comes back)")
            self._set(root, "missing", "the folder is gone: its documents stay in the library")

    # ------------------------------------------------------------------ library actions
    def sync(self, root: Path) -> None:
        """Make the library hold what ``root`` holds: ingest it (unchanged files are skipped), then remove
        what the library holds under it that no longer exists (only while the folder itself exists)."""
        self._set(root, "syncing")
        report = self._ingest([root])
        gone = [p for p in self._held_under(root) if not Path(p).exists()]
        removed = self._remove(gone, root) if gone else 0
        what = report.summary()
        self._set(root, "watching", f"synced: {what}" + (f"; {removed} removed" if removed else ""))
        self.say(f"synced    {root}: {what}" + (f"; {removed} file(s) removed" if removed else ""))
        self.say(f"watching  {root}")

    def apply(self, changes: set[tuple[watchfiles.Change, str]]) -> None:
        """One batch of changes: ingest what exists, then remove what is gone (see the module's doc)."""
        self.batches += 1
        paths = sorted({Path(p) for _, p in changes})
        roots = {p: root_of(p, self.roots) for p in paths}
        for r in set(roots.values()):
            if r is not None and not r.is_dir():
                self._missing(r)
        paths = [p for p in paths if roots[p] is not None and roots[p].is_dir()]
        there = [p for p in paths if p.exists()]
        report = self._ingest(there) if there else None
        removed = 0
        gone = [p for p in paths if not p.exists()]
        for r in {roots[p] for p in gone}:
            removed += self._remove([str(p) for p in gone if roots[p] == r], r)
        for r in {roots[p] for p in paths} & set(self._states):  # its state stays ("error" still needs its sync)
            self._set(r, self._states[r].state, (report.summary() if report else "") +
                      (f"; {removed} removed" if removed else ""))

    def _ingest(self, paths: list[Path]) -> IngestReport:
        self.runs += 1
        report = (ingest_beside_answers if self.beside_answers else ingest_here)(self.library, [str(p) for p in paths])
        reused = set(report.reused)
        for f in report.added + report.updated:
            verb = "added" if f in report.added else "updated"
            self.say(f"{verb:9s} {f}" + (" (content already in the library: not embedded)" if f in reused else ""))
        for f, reason in report.failed:
            self.say(f"FAILED    {reason}")
        return report

    def _held_under(self, path: Path | str) -> list[str]:
        """The library's files (indexed or pending) at ``path`` or under it."""
        key = str(path)
        prefix = key.rstrip("/") + "/"
        lib = self.library
        return [p for p in [*lib.store.files(), *lib.pending()] if p == key or p.startswith(prefix)]

    def _remove(self, paths: list[str], root: Path) -> int:
        """Remove the library's files at or under ``paths`` (gone from disk), unless ``root`` is gone too
        (after ``settle`` seconds: a folder being deleted loses its files first)."""
        known = self._held_under(root)
        exact = set(known)
        held = {p for p in paths if p in exact}
        for p in set(paths) - held:  # a folder, perhaps: what the library holds under it
            held.update(k for k in known if k.startswith(p.rstrip("/") + "/"))
        if not held:
            return 0
        self._stop.wait(self.settle_s)
        if not root.is_dir():
            self._missing(root)
            return 0
        removed = 0
        for h in sorted(held):
            if Path(h).exists():
                continue  # back meanwhile (an editor's save by rename): the next batch indexes it
            self.library.remove(h)
            removed += 1
            self.say(f"removed   {h}")
        return removed

    # ------------------------------------------------------------------ state
    def _set(self, root: Path, state: str, last: str | None = None) -> None:
        old = self._states.get(root)
        if old is None:  # no longer watched
            return
        files = old.files
        if state in ("watching", "missing", "error"):
            try:
                files = len(self._held_under(root))
            except Exception:
                pass
        self._states[root] = replace(old, state=state, files=files, last=old.last if last is None else last,
                                     since=old.since if state == old.state else time.time())

    def status(self) -> list[FolderState]:
        """Each watched folder's state, in the order given."""
        return [s for s in (self._states.get(r) for r in self.roots) if s is not None]
