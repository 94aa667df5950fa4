"""Which file-system changes under a watched folder are worth a look: not editor temp files, partial
downloads, hidden files or folders (relative to the watched folder), nor (added or changed) files of a
type the library cannot read. A deleted path always is (it may have been a folder: what the library
holds under it goes); the watcher removes only what the library holds."""
from __future__ import annotations

from pathlib import Path

from watchfiles import Change

from rag.ingest import loaders

# editors' swap, backup and autosave files; downloads still being written; office lock files
TEMP_SUFFIXES = ("~", ".swp", ".swo", ".swx", ".tmp", ".temp", ".part", ".partial", ".crdownload", ".download")
TEMP_PREFIXES = ("~$", "#", ".#", ".~lock.")


def temporary(name: str) -> bool:
    """A name editors and browsers give files that are not (yet) a document: ``.notes.md.swp``,
    ``notes.md~``, ``.#notes.md``, ``#notes.md#``, ``report.pdf.crdownload``, ``~$report.docx``."""
    lower = name.lower()
    return lower.endswith(TEMP_SUFFIXES) or lower.startswith(TEMP_PREFIXES)


def root_of(path: Path, roots: list[Path]) -> Path | None:
    """The watched folder ``path`` lies in (the innermost one), or None."""
    inside = [r for r in roots if path == r or path.is_relative_to(r)]
    return max(inside, key=lambda r: len(r.parts)) if inside else None


def ignored(path: Path, root: Path) -> bool:
    """A temp file, or hidden (a name starting with "." below the watched folder)."""
    parts = path.relative_to(root).parts
    return any(p.startswith(".") for p in parts) or bool(parts) and temporary(parts[-1])


class ChangeFilter:
    """``watchfiles``' ``watch_filter``: (change, path) -> look at it or not."""

    def __init__(self, roots: list[Path]):
        self.roots = list(roots)

    def __call__(self, change: Change, path: str) -> bool:
        p = Path(path)
        root = root_of(p, self.roots)
        if root is None or p == root or ignored(p, root):
            return False
        if change == Change.deleted:
            return True
        return p.is_dir() or loaders.is_supported(p)
