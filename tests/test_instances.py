"""Process-wide instances follow their configuration (issue 25, item 5): the engine registry gives one
instance per (name, configuration), ``Library.shared()`` one per library configuration, and the pipeline's
functions take the library explicitly (``lib``: a library, or how to open one: ``pipeline.library``).
Real parts: real engine objects from the registry, real libraries (MiniLM + FAISS + BM25) in temp folders."""
from __future__ import annotations

import inspect

import pytest

from engines import registry
from rag import pipeline as pl
from rag.config import settings


async def test_the_registry_gives_one_engine_per_configuration(monkeypatch):
    # the 'foundry' engine connects lazily: making one starts nothing
    monkeypatch.setenv("FOUNDRY_BASE_URL", "http://127.0.0.1:9/one")
    one = settings().engine_config("foundry")
    first = pl.engine("foundry")
    assert first is registry.get("foundry", dict(reversed(list(one.items())))), "equal settings: the same one"
    monkeypatch.setenv("FOUNDRY_BASE_URL", "http://127.0.0.1:9/two")
    two = settings().engine_config("foundry")
    second = pl.engine("foundry")
    assert second is not first, "a changed setting gives the instance made for that setting"
    assert second.base_url.endswith("/two") and first.base_url.endswith("/one")
    monkeypatch.setenv("FOUNDRY_BASE_URL", "http://127.0.0.1:9/one")
    assert pl.engine("foundry") is first, "the first setting again: its instance"
    await registry.close("foundry", one)
    assert registry.get("foundry", one) is not first, "closed and forgotten: the next use makes a new one"
    for config in (one, two):
        await registry.close("foundry", config)
    assert registry.config_key(one) != registry.config_key(two)
    assert registry.config_key({"a": 1, "b": 2}) == registry.config_key({"b": 2, "a": 1})


@pytest.mark.slow
async def test_the_shared_library_follows_a_changed_data_folder(tmp_path, monkeypatch):
    from rag.library import Library

    (tmp_path / "a.md").write_text("# Kettles\n\nDescale a kettle with vinegar and water, then rinse it.\n")
    (tmp_path / "b.md").write_text("# Gardens\n\nWater the tomatoes in the morning, never at noon.\n")
    libs = {}
    for name in ("a", "b"):
        monkeypatch.setenv("LRC_DATA_DIR", str(tmp_path / f"data-{name}"))
        libs[name] = await pl.opened(pl.library)
        assert libs[name].index_dir == tmp_path / f"data-{name}" / "index"
        assert Library.shared() is libs[name], "the same settings: the same library"
        events = [ev async for ev in pl.ingest([tmp_path / f"{name}.md"], lib=pl.library)]
        assert events[-1].report.added, events[-1]
    assert libs["a"] is not libs["b"]
    for name, other in (("a", "b"), ("b", "a")):
        monkeypatch.setenv("LRC_DATA_DIR", str(tmp_path / f"data-{name}"))
        assert Library.shared() is libs[name], "the first folder again: its library"
        listed = {d.name for d in await pl.documents(None, lib=pl.library)}
        assert f"{name}.md" in listed and f"{other}.md" not in listed, listed
    for lib in libs.values():
        lib.backend.close()


def test_every_pipeline_function_takes_the_library_explicitly():
    """No function of the pipeline falls back to a library of its own choosing: ``lib`` is required."""
    from rag import compare

    for fn in (pl.answer, pl.prepare, pl.ingest, pl.ingest_uploads, pl.documents, pl.remove_document,
               pl.reindex, pl.ensure_guide, pl.guide_present, compare.compare):
        param = inspect.signature(fn).parameters["lib"]
        assert param.kind is inspect.Parameter.KEYWORD_ONLY and param.default is inspect.Parameter.empty, fn
