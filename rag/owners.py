"""Whose a library file is. The library records it (the ``owner`` of a manifest row, both backends): a
chat upload made with LRC_AUTH=password belongs to the user who dropped it; every other file
(docs_corpus/, folders indexed from the command line, uploads made without users) has no owner and is
shared. A user sees the shared files and their own, never another user's. Because the owner is in the
store, several app instances on one PostgreSQL library agree on it, whatever folder each keeps its
uploads in.

The uploads folder's layout (``uploads/users/<name>/``) is only where a user's copies are kept; it
decides nothing, except once: a library made before owners were recorded gets them from its paths
(``legacy_owner``, run by the stores' migrations)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Mapping

from rag.config import settings
from rag.users import USER_NAME  # also a safe folder name

# a user's upload as this app laid them out before owners were recorded: .../uploads/users/<name>/...
_LEGACY = re.compile(r"(?:^|[/\\])uploads[/\\]users[/\\]([^/\\]+)[/\\].")


def under(path: str | Path, folder: Path) -> bool:
    """Whether ``path`` (an indexed, resolved path) lies in ``folder`` (the guide, the uploads folder)."""
    try:
        return Path(path).is_relative_to(folder.expanduser().resolve())
    except OSError:
        return False


def uploads_dir(user: str | None) -> Path:
    """Where a chat's dropped files are stored: the shared folder, or the user's own."""
    base = settings().uploads_dir
    if user is None:
        return base
    if not USER_NAME.fullmatch(user):
        raise ValueError(f"not a user name: {user!r}")
    return base / "users" / user


def user_of_uploads(folder: Path | None) -> str | None:
    """The user whose uploads folder (``uploads_dir(user)``) ``folder`` is, None for any other folder:
    the chat stores a user's drop there and records that user as its owner."""
    if folder is None:
        return None
    folder = Path(folder).expanduser().resolve()
    users = (settings().uploads_dir / "users").expanduser().resolve()
    name = folder.name
    return name if folder.parent == users and USER_NAME.fullmatch(name) else None


def legacy_owner(path: str) -> str | None:
    """The owner of a file indexed before the library recorded owners, read from where its path says it
    was stored (any instance's ``uploads/users/<name>/``): the one-time migration of an old manifest."""
    m = _LEGACY.search(str(path))
    return m.group(1) if m and USER_NAME.fullmatch(m.group(1)) else None


def may_see(owner: str | None, user: str | None) -> bool:
    """A file with ``owner`` (None: shared) is visible to ``user`` (None: the chat without users)."""
    return owner is None or owner == user


def scope_for(user: str | None, paths: Iterable[str], owned: Mapping[str, str]) -> tuple[str, ...] | None:
    """The files ``user`` may search among ``paths``, given the library's recorded owners (``owned``: path
    -> owner, shared files left out): None when that is all of them, so retrieval needs no filter."""
    paths = list(paths)
    seen = tuple(p for p in paths if may_see(owned.get(p), user))
    return None if len(seen) == len(paths) else seen
