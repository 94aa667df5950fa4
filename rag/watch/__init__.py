"""Watched folders: the library follows what is added, changed, renamed or removed under them
(``watcher.Watcher`` on ``watchfiles``; ``filters``: what never counts). ``rag watch DIR...`` runs one in
the foreground; the chat server runs one in the background for ``LRC_WATCH`` (``start_background`` at
start-up, ``stop_background`` at shutdown, ``background()`` for the Library view)."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Iterable

from rag.config import settings
from rag.watch.watcher import FolderState, Watcher

__all__ = ["FolderState", "Watcher", "background", "start_background", "stop_background"]

_current: Watcher | None = None
_lock = threading.Lock()


def start_background(folders: Iterable[str | Path] | None = None, library: Callable | None = None) -> Watcher | None:
    """Start the process's watcher in a thread for ``folders`` (default: ``settings().watch``, LRC_WATCH) on
    ``library`` (default: ``Library.shared``, opened in the watcher's thread). None when there is nothing to
    watch; an earlier background watcher is stopped first."""
    global _current
    from rag.library import Library

    folders = list(settings().watch if folders is None else folders)
    stop_background()
    if not folders:
        return None
    with _lock:
        _current = Watcher(folders, library or Library.shared).start()
        return _current


def stop_background() -> None:
    """Stop the process's background watcher, if any (an ingest under way finishes first)."""
    global _current
    with _lock:
        watcher, _current = _current, None
    if watcher is not None:
        watcher.stop()


def background() -> Watcher | None:
    """The process's background watcher (the chat server's), or None."""
    return _current
