"""A chat upload kept by the library: copied into ``data_dir/uploads/<content hash>/<original name>``
(``rag.pipeline.ingest_uploads`` indexes it; ``rag.catalog`` knows the layout)."""
from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

from rag.config import settings

_UNSAFE = re.compile(r"[^\w.\- ()+,@]+")


def store_upload(src: str | Path, name: str, uploads_dir: Path | None = None) -> Path:
    """Copy an uploaded temp file into ``data_dir/uploads/<content hash>/<original name>``: the
    original name survives (citations show it), equal content maps to the same file (re-uploading
    is a no-op for the index), and two different files with one name never overwrite each other."""
    src = Path(src)
    uploads_dir = uploads_dir or settings().uploads_dir
    digest = hashlib.sha256()
    with src.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    clean = _UNSAFE.sub("_", Path(str(name).replace("\\", "/")).name).strip(" .") or src.name
    dest = uploads_dir / digest.hexdigest()[:16] / clean
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        shutil.copyfile(src, tmp)
        tmp.replace(dest)
    return dest

