"""Whose a library file is. With LRC_AUTH=password a user's chat uploads live under
``uploads/users/<name>/``; every other file (docs_corpus/, folders indexed from the command line, uploads
made without users) is shared. A user sees the shared files and their own, never another user's."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from rag.config import settings
from rag.users import USER_NAME  # also a safe folder name


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


def owner_of(path: str | Path) -> str | None:
    """The user a library file belongs to, or None for a shared file."""
    try:
        rel = Path(path).resolve().relative_to((settings().uploads_dir / "users").resolve())
    except ValueError:
        return None
    return rel.parts[0] if len(rel.parts) > 1 else None


def may_see(path: str | Path, user: str | None) -> bool:
    owner = owner_of(path)
    return owner is None or owner == user


def scope_for(user: str | None, paths: Iterable[str]) -> tuple[str, ...] | None:
    """The files ``user`` may search among ``paths`` (the library's): None when that is all of them
    (no other user's file is there), so retrieval needs no filter."""
    paths = list(paths)
    seen = tuple(p for p in paths if may_see(p, user))
    return None if len(seen) == len(paths) else seen
