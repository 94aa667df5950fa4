"""What the office-package loaders (.docx, .pptx, .odt) share: checking that the file is a zip package (with
a readable error for an old binary or password-protected file), opening it within the unzip caps, and the
document's own title.

The caps (a zip bomb fails alone, before it can fill the memory): the parts' total uncompressed size
(``LRC_MAX_UNZIP_MB``), their compression ratio, of each part and of the whole (``LRC_MAX_UNZIP_RATIO``;
only for parts and packages unpacking to more than ``RATIO_FLOOR``: a small, very regular part is
harmless) and the number of parts (``MAX_PARTS``). They are checked twice: from the zip's central directory
before anything is inflated, and while reading, in ``CHUNK``-sized pieces counted against the caps, so a
directory that lies about the sizes is stopped at the cap as well. python-docx and python-pptx open the
package themselves: every part is first inflated here (counted and thrown away) and only a package that
passes is handed to them."""
from __future__ import annotations

import importlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rag.ingest.loaders.errors import CompressionLimit, CorruptFile, LoaderError, UnpackLimit

OLE_HEADER = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # a 97-2003 binary file (.doc, .ppt), or a password-protected package
ZIP_HEADER = b"PK\x03\x04"
MIB = 1024 * 1024
RATIO_FLOOR = MIB  # parts (and packages) unpacking to less are not held to the ratio cap
MAX_PARTS = 20_000  # a 2,000-slide deck has ~6,000; each part costs a directory entry in memory
CHUNK = MIB  # bytes inflated at a time while reading


@dataclass(frozen=True)
class Caps:
    """The unzip caps: total uncompressed bytes and compression ratio."""

    max_bytes: int
    max_ratio: float

    @classmethod
    def from_settings(cls) -> "Caps":
        from rag.config import settings

        s = settings()
        return cls(int(s.max_unzip_mb * MIB), float(s.max_unzip_ratio))

    def too_big(self, path: Path, size: int, what: str) -> UnpackLimit:
        return UnpackLimit(path, f"{what} {size / MIB:.1f} MB > LRC_MAX_UNZIP_MB={self.max_bytes / MIB:g}")

    def check_ratio(self, path: Path, size: int, packed: int, what: str) -> None:
        if size > RATIO_FLOOR and size > self.max_ratio * max(packed, 1):
            raise CompressionLimit(path, f"{what} unpacks to {size / max(packed, 1):.0f} times its compressed size "
                                         f"> LRC_MAX_UNZIP_RATIO={self.max_ratio:g}")


def invalid(path: Path, kind: str, reason: str) -> CorruptFile:
    return CorruptFile(path, f"not a valid {kind}: {reason}"[:240])


def check_package(path: Path, data: bytes, kind: str, legacy: str) -> None:
    """A CorruptFile unless ``data`` starts like a zip package; ``legacy``: what an OLE file is and how to
    save it instead."""
    if data.startswith(OLE_HEADER):
        raise invalid(path, kind, legacy)
    if not data.startswith(ZIP_HEADER):
        raise invalid(path, kind, "not a zip package")


def open_zip(path: Path, data: bytes, kind: str, legacy: str, caps: Caps | None = None) -> zipfile.ZipFile:
    """The package as a ZipFile whose central directory is within the caps (nothing inflated yet), or a
    LoaderError saying why not."""
    check_package(path, data, kind, legacy)
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except Exception as exc:  # a damaged directory
        raise invalid(path, kind, f"{type(exc).__name__}: {exc}") from None
    check_directory(path, z, caps or Caps.from_settings())
    return z


def check_directory(path: Path, z: zipfile.ZipFile, caps: Caps) -> None:
    """The sizes the central directory declares, against the caps."""
    infos = z.infolist()
    if len(infos) > MAX_PARTS:
        raise UnpackLimit(path, f"{len(infos)} parts > {MAX_PARTS}")
    total = sum(i.file_size for i in infos)
    if total > caps.max_bytes:
        raise caps.too_big(path, total, "its parts declare")
    for info in infos:
        caps.check_ratio(path, info.file_size, info.compress_size, info.filename)
    caps.check_ratio(path, total, sum(i.compress_size for i in infos), "the package")


class Reader:
    """Reads a checked package's parts in ``CHUNK`` pieces, counting every inflated byte against the caps
    (whatever the directory declared)."""

    def __init__(self, path: Path, z: zipfile.ZipFile, caps: Caps | None = None):
        self.path, self.z = path, z
        self.caps = caps or Caps.from_settings()
        self.total = 0  # bytes inflated so far, all parts together

    def read(self, name: str, keep: bool = True) -> bytes:
        """One part's bytes (``keep=False``: inflated, counted and dropped)."""
        info = self.z.getinfo(name)
        parts: list[bytes] = []
        size = 0
        with self.z.open(info) as f:
            while chunk := f.read(CHUNK):
                size += len(chunk)
                self.total += len(chunk)
                if self.total > self.caps.max_bytes:
                    raise self.caps.too_big(self.path, self.total, "stopped reading at")
                self.caps.check_ratio(self.path, size, info.compress_size, info.filename)
                if keep:
                    parts.append(chunk)
        return b"".join(parts)

    def inflate_all(self) -> None:
        """Every part read once and dropped: the whole package is within the caps."""
        for info in self.z.infolist():
            if not info.is_dir():
                self.read(info.filename, keep=False)


def open_package(path: Path, data: bytes, *, module: str, package: str, factory: str, kind: str, legacy: str):
    """``module.factory(BytesIO(data))`` (e.g. docx.Document) once the package passed the unzip caps, or a
    LoaderError saying why not. ``package``:
    the PyPI name for the not-installed message; ``kind``: "Word document (.docx)"; ``legacy``: what an OLE
    file is ("an old Word 97-2003 file (.doc)") and how to save it instead."""
    try:
        lib = importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise LoaderError(path, f"{package} is not installed: {exc}") from None
    with open_zip(path, data, kind, legacy) as z:
        try:
            Reader(path, z).inflate_all()  # before python-docx/-pptx read the parts themselves
        except LoaderError:
            raise
        except Exception as exc:  # a damaged part (bad CRC, unknown compression)
            raise invalid(path, kind, f"{type(exc).__name__}: {exc}") from None
    try:
        return getattr(lib, factory)(io.BytesIO(data))
    except Exception as exc:  # zipfile, lxml and the python-docx/-pptx readers raise many kinds on damaged packages
        raise invalid(path, kind, f"{type(exc).__name__}: {exc}") from None


def core_title(doc) -> str:
    """The title in the package's document properties, or ""."""
    try:
        return (doc.core_properties.title or "").strip()
    except Exception:
        return ""
