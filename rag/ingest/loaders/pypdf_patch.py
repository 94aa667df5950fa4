"""A patch of one private pypdf class, isolated here: parse each font of a PDF once, not once per page.

pypdf (7.x) builds a ``Font`` (encoding, ToUnicode CMap, widths) from the font dictionary on every
page it extracts: ~12 % of extraction time on the R manuals (docs/BENCHMARKS.md, "Ingest
throughput"). Within one ``fonts_parsed_once()`` block the same font object yields the same
``Font``, so it is memoised by the identity of the (resolved, shared) font dictionary; outside such
a block (other threads, other callers) pypdf behaves as shipped. Extracted text is identical
(checked block by block on R-FAQ, R-data, R-lang, gnuplot, liboctave).

The patched method is ``pypdf.generic._font.Font.from_font_resource`` (a private module). If a
pypdf release moves or renames it, ``install()`` does nothing and extraction is just slower.
"""
from __future__ import annotations

import copy
import threading
from contextlib import contextmanager

_FONT_CACHE = threading.local()


def install() -> None:
    """Wrap ``Font.from_font_resource`` with the per-thread cache (once per process)."""
    try:
        from pypdf.generic._font import Font
    except ImportError:  # another pypdf layout: no cache, same text
        return
    original = Font.__dict__.get("from_font_resource")
    if original is None or getattr(original, "_rag_cached", False):
        return
    func = original.__func__

    def from_font_resource(cls, pdf_font_dict):
        cache = getattr(_FONT_CACHE, "fonts", None)
        if cache is None:
            return func(cls, pdf_font_dict)
        hit = cache.get(id(pdf_font_dict))
        if hit is not None and hit[0] is pdf_font_dict:
            return copy.copy(hit[1])  # a copy: the caller may set space_width on it
        font = func(cls, pdf_font_dict)
        cache[id(pdf_font_dict)] = (pdf_font_dict, font)  # the dict is kept: its id is not reused
        return copy.copy(font)

    from_font_resource._rag_cached = True
    Font.from_font_resource = classmethod(from_font_resource)


@contextmanager
def fonts_parsed_once():
    """Within this block (in this thread), each font dictionary is parsed once."""
    install()
    _FONT_CACHE.fonts = {}
    try:
        yield
    finally:
        _FONT_CACHE.fonts = None
