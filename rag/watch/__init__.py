"""Watched folders: the library follows what is added, changed, renamed or removed under them
(``watcher.Watcher`` on ``watchfiles``; ``filters``: what never counts). ``rag watch DIR...`` runs one in
the foreground; the chat server runs one in the background (``start_background`` at start-up,
``stop_background`` at shutdown, ``background()`` for the Library view) for the folders of ``LRC_WATCH``
and those added in the Library view (``watch_folder`` / ``unwatch_folder``: kept in
``data_dir/watched_folders.json``, so a restart watches them again; LRC_WATCH's are the administrator's
and stay)."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Callable, Iterable

from rag.config import settings
from rag.watch.watcher import FolderState, Watcher, folder_key

__all__ = ["FolderState", "Watcher", "added_folders", "background", "folder_key", "start_background",
           "stop_background", "unwatch_folder", "watch_folder"]

ADDED = "watched_folders.json"  # in data_dir: the folders added in the Library view
_current: Watcher | None = None
_library: Callable | None = None  # how the background watcher opens its library (None: Library.shared)
_lock = threading.RLock()


def start_background(folders: Iterable[str | Path] | None = None, library: Callable | None = None) -> Watcher | None:
    """Start the process's watcher in a thread for ``folders`` (default: ``settings().watch``, LRC_WATCH, and
    the folders added in the Library view) on ``library`` (default: ``Library.shared``, opened in the
    watcher's thread). None when there is nothing to watch; an earlier background watcher is stopped first."""
    global _current, _library
    folders = [*settings().watch, *added_folders()] if folders is None else list(folders)
    stop_background()
    with _lock:
        _library = library
        if folders:
            _current = Watcher(folders, library or _shared_library, beside_answers=True).start()
        return _current


def _shared_library():
    from rag.library import Library

    return Library.shared()


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


# ------------------------------------------------------------------ folders added in the Library view
def _added_file() -> Path:
    return settings().data_dir / ADDED


def added_folders() -> list[Path]:
    """The folders added in the Library view (not LRC_WATCH's), in the order added."""
    try:
        return [Path(p) for p in json.loads(_added_file().read_text(encoding="utf-8"))]
    except (OSError, ValueError):
        return []


def _save(folders: list[Path]) -> None:
    f = _added_file()
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps([str(p) for p in folders], indent=1), encoding="utf-8")
    tmp.replace(f)


def watch_folder(path: str | Path) -> Path:
    """Watch a folder of this server (the Library view's "Watch a folder"), now and after a restart.
    ValueError with a sentence to show when it is not a folder here."""
    raw = str(path).strip()
    root = folder_key(raw) if raw else None
    if root is None or not Path(raw).expanduser().is_absolute():
        raise ValueError("Give the folder's full path on the server (for example /home/me/notes).")
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder on the server.")
    with _lock:
        added = added_folders()
        if root not in added and root not in map(folder_key, settings().watch):
            _save([*added, root])
        if _current is None:
            start_background([root], _library)
        else:
            _current.add(root)
    return root


def unwatch_folder(path: str | Path) -> None:
    """Stop watching a folder added in the Library view (its documents stay in the library). LRC_WATCH's
    folders are the administrator's: LookupError."""
    root = folder_key(path)
    with _lock:
        added = added_folders()
        if root not in added:
            raise LookupError(f"{root} is watched by the server's configuration (LRC_WATCH), not from here.")
        _save([p for p in added if p != root])
        if _current is not None:
            _current.discard(root)
