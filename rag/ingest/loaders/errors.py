"""Why a file cannot be indexed: one ``LoaderError`` subclass per reason.

``str(err)`` names the file and the reason (and a detail when there is one), so a batch can report
it to the user as it is and go on with the next file.
"""
from __future__ import annotations

from pathlib import Path

from rag.ingest.loaders import formats


class LoaderError(Exception):
    """A file that cannot be indexed. ``str(err)`` names the file and the reason."""

    reason = "cannot be read"

    def __init__(self, path: str | Path, detail: str = ""):
        self.path = str(path)
        self.detail = detail
        msg = f"{Path(self.path).name}: {self.reason}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class CorruptFile(LoaderError):
    reason = "the file is damaged or not what its extension says"


class EncryptedFile(LoaderError):
    reason = "the PDF is encrypted (password protected); remove the password and add it again"


class EmptyFile(LoaderError):
    reason = "the file holds no text"


class BinaryFile(LoaderError):
    reason = "binary content, not text"


class FileTooLarge(LoaderError):
    reason = "the file is larger than the size limit"


class UnsupportedType(LoaderError):
    reason = f"unsupported file type (supported: {formats.short_list()})"


class NoTextLayer(LoaderError):
    reason = "the PDF has no text to read"


class UndecodableText(LoaderError):
    reason = "the text encoding could not be recognised"


class UnpackLimit(LoaderError):
    """An Office package that unpacks to more than ``LRC_MAX_UNZIP_MB`` (or holds absurdly many parts):
    refused before python-docx, python-pptx or lxml inflate it."""

    reason = "the package unpacks to more than the size limit (a zip bomb?)"


class CompressionLimit(LoaderError):
    """An Office package (or one of its parts) compressed more than ``LRC_MAX_UNZIP_RATIO`` times:
    documents compress 3-30 times, a zip bomb hundreds of times."""

    reason = "the package is compressed far more than a document is (a zip bomb?)"


class TooManyPages(LoaderError):
    reason = "the PDF has more pages than the page limit"


class TooManyPixels(LoaderError):
    """An image larger than OCR reads (``LRC_OCR_MAX_PIXELS``), known from its header before it is decoded."""

    reason = "the image has more pixels than OCR reads"


class MemoryLimit(LoaderError):
    """Reading the file needed more memory than a loader process may use (``LRC_LOADER_MEMORY_MB``)."""

    def __init__(self, path: str | Path, mb: int):
        self.reason = f"needs more than {mb} MiB of memory to read"
        super().__init__(path, f"the loader limit LRC_LOADER_MEMORY_MB={mb}; split the file or raise the limit")


class CpuLimit(LoaderError):
    """Reading the file took more CPU time than a loader process may spend on one file
    (``LRC_LOADER_CPU_SECONDS``)."""

    def __init__(self, path: str | Path, seconds: int):
        self.reason = f"took more than {seconds} s of CPU to read"
        super().__init__(path, f"the loader limit LRC_LOADER_CPU_SECONDS={seconds}; split the file or raise the limit")


def too_large(path: str | Path, size: int, max_file_mb: float | None) -> FileTooLarge | None:
    """The error for a file of ``size`` bytes over the limit (None when it fits or there is no limit)."""
    if max_file_mb and size > max_file_mb * 1024 * 1024:
        return FileTooLarge(path, f"{size / 1048576:.1f} MB > {max_file_mb:g} MB")
    return None
