"""The chat's settings panel: engines, their models, "Compare with", search scope, retrieval and answer
settings. Values are per chat (cl.user_session); the lists come from the engines themselves."""
from __future__ import annotations

import asyncio
import re

import chainlit as cl
from chainlit.input_widget import Select, Slider

from engines import registry
from engines.base import EngineError
from rag import pipeline as pl
from rag import prompt as prompt_mod
from rag.chat.state import OFF
from rag.config import settings
from rag.schema import Mode

AUTO_LABEL = "Auto (routing rules)"
DEFAULT = "default"  # the model select's value for "the engine's default" (a select value cannot be "")
STYLES = {"Quote from the documents, then the model's answer": "quote+answer", "The model's answer only": "answer",
          "Quote only (no model)": "quote"}


# ------------------------------------------------------------------ settings panel
def start_hint(engine_name: str, said: str) -> str:
    """How to start an engine that runs as a service (unless the error already said it)."""
    try:
        hint = pl.engine(engine_name).start_hint
    except EngineError:
        return ""
    commands = re.findall(r"`([^`]+)`", hint or "")
    return "" if not hint or hint in said or any(c in said for c in commands) else hint


def engine_items() -> dict[str, str]:
    """Label -> engine name for the settings panel: every registered engine, then "auto"."""
    items = {label: name for name, label in registry.labels().items()}
    items[AUTO_LABEL] = pl.AUTO
    return items


async def model_items(engine_name: str) -> dict[str, str]:
    """Label -> model id for the engine; raises EngineError when it cannot be reached (RulesError
    when "auto" has a bad rules file)."""
    if engine_name == pl.AUTO:
        rules = await asyncio.to_thread(pl.routing_rules)
        return {f"By the rules: {' → '.join(t.label for t in rules.targets)}": DEFAULT}
    engine = pl.engine(engine_name)
    models = await asyncio.wait_for(engine.list_models(), timeout=15)
    return {(m.name or m.id): m.id for m in models} or {"(engine default)": DEFAULT}


async def compare_items() -> dict[str, str]:
    """What an answer can be compared with: off, then every model of every engine that lists its
    models within 5 s, then "auto" (label -> "ENGINE:MODEL")."""
    async def listed(name: str):
        try:
            return name, await asyncio.wait_for(pl.engine(name).list_models(), timeout=5)
        except (EngineError, asyncio.TimeoutError):
            return name, []

    items = {"Off": OFF}
    for name, models in await asyncio.gather(*(listed(n) for n in registry.ENGINES)):
        for m in models:
            items[f"{pl.engine_short(name)} · {m.name or m.id}"] = f"{name}:{m.id}"
    items[AUTO_LABEL] = f"{pl.AUTO}:"
    return items


async def choice_label(engine: str, model: str) -> str:
    if engine == pl.AUTO:
        return AUTO_LABEL
    return f"{pl.engine_short(engine)} · {await pl.model_label(pl.engine(engine), model or None)}"


async def send_settings(opts: pl.Options, models: dict[str, str], compare: str = OFF,
                         compare_items: dict[str, str] | None = None) -> None:
    shown = opts.model or DEFAULT
    if shown not in models.values():  # the engine's default, an alias, or a model this engine lacks
        if opts.engine == pl.AUTO:
            shown = DEFAULT
        else:
            resolved = await pl.model_label(pl.engine(opts.engine), opts.model or None)
            shown = resolved if resolved in models.values() else next(iter(models.values()))
        opts.model = shown if opts.model else ""
    compare_items = compare_items or {"Off": OFF}
    if compare not in compare_items.values():
        compare_items[compare] = compare
    widgets = choice_widgets(opts, models, shown)
    engine_and_model, rest = widgets[:2], widgets[2:]
    await cl.ChatSettings([
        *engine_and_model,
        Select(id="compare", label="Compare with", items=compare_items, initial_value=compare,
               description="Answer each question twice, side by side: with the engine and model above (A) "
                           "and with this one (B), from the same passages"),
        Select(id="scope", label="Search", items=SCOPES, initial_value=cl.user_session.get("scope") or "all",
               description="Only this chat's files: the files dropped into this chat"),
        *rest,
    ]).send()
    opts.model = "" if opts.model == DEFAULT else opts.model


def choice_widgets(opts: pl.Options, models: dict[str, str], shown_model: str) -> list:
    """One widget per choice of the pipeline (``Options.choices()``, in its order; the panel's update gives
    them back to ``Options.updated``): a choice added to Options without a widget here fails at once."""
    about_model = ("Models of the chosen engine (confirm a new engine to refresh this list)" if opts.engine != pl.AUTO
                   else f"Auto tries these in order, falling back when one is down, slow or too small. "
                        f"Rules file: {settings().routing_file}")
    widgets = {
        "engine": Select(id="engine", label="Engine", items=engine_items(), initial_value=opts.engine),
        "model": Select(id="model", label="Model", items=models, initial_value=shown_model, description=about_model),
        "top_k": Slider(id="top_k", label="Passages", initial=opts.top_k, min=1, max=10, step=1),
        "mode": Select(id="mode", label="Retrieval mode", values=Mode.values(), initial_value=opts.mode),
        "style": Select(id="style", label="Answer", items=STYLES, initial_value=opts.style,
                        description="Quote only needs no model: instant, for slow machines"),
        "temperature": Slider(id="temperature", label="Temperature", initial=opts.temperature, min=0, max=1.5, step=0.1),
        "max_new_tokens": Slider(id="max_new_tokens", label="Max answer tokens", initial=opts.max_new_tokens, min=0,
                                 max=1024, step=32, description=prompt_mod.OWN_LENGTH),
    }
    return [widgets[name] for name in pl.Options.choices()]


async def try_models(engine_name: str) -> tuple[dict[str, str] | None, str]:
    """(models, "") or (None, what to tell the user) when the engine cannot be used."""
    from rag.routing.rules import RulesError

    try:
        return await model_items(engine_name), ""
    except RulesError as err:
        return None, f"**The routing rules cannot be used.** {err}"
    except (EngineError, asyncio.TimeoutError) as err:
        text = err.user_text() if isinstance(err, EngineError) else "It did not answer within 15 s."
        label = registry.labels().get(engine_name, engine_name)
        return None, f"**{label} is not reachable.** {text} {start_hint(engine_name, text)}"



def engine_label(name: str) -> str:
    return AUTO_LABEL if name == pl.AUTO else registry.labels().get(name, name)


SCOPES = {"All documents": "all", "Only this chat's files": "chat"}


async def resend_settings(opts: pl.Options) -> None:
    models, _ = await try_models(opts.engine)
    await send_settings(opts, models or {"(engine default)": DEFAULT}, cl.user_session.get("compare") or OFF,
                         await compare_items())
