"""One module per `python -m rag` command (see rag/cli.py).

A command that fails says why on stderr and exits with the status of the error's category
(``exit_status``): 2 when what was given cannot be used (as argparse), 69 when a service is down
(EX_UNAVAILABLE: the engine, the library's database), 75 when it was too slow or cut off (EX_TEMPFAIL:
try again), 1 for anything else."""
from __future__ import annotations

import asyncio
import sys
from typing import Awaitable

from engines.base import ErrorCategory, category_of

EXIT_STATUS = {
    ErrorCategory.BAD_REQUEST: 2,
    ErrorCategory.TOO_LONG: 2,
    ErrorCategory.NOT_FOUND: 2,
    ErrorCategory.UNAVAILABLE: 69,
    ErrorCategory.TIMEOUT: 75,
    ErrorCategory.INTERRUPTED: 75,
    ErrorCategory.BUSY: 75,
    ErrorCategory.INTERNAL: 1,
}


def exit_status(failure: ErrorCategory | BaseException) -> int:
    """The exit status for a failure: a pipeline ``Failed`` event's category, or an error's."""
    return EXIT_STATUS[failure if isinstance(failure, ErrorCategory) else category_of(failure)]


async def until_stopped(work: Awaitable[int], control) -> int:
    """A command's answer loop: its exit status, or 130 after Ctrl-C (the running generations are
    stopped first); the engines are closed either way."""
    from engines import registry

    try:
        return await work
    except (KeyboardInterrupt, asyncio.CancelledError):
        await control.cancel()
        print("\n[stopped]", file=sys.stderr)
        return 130
    finally:
        await registry.close_all()


_TYPES = {"int": int, "float": float}  # the annotations of Options' choices (strings: postponed annotations)


def add_choice_arguments(p, skip: tuple[str, ...] = (), prefix: str = "") -> None:
    """A flag for each of the pipeline's per-chat choices (``rag.pipeline.Options.choices()``, or those in
    all but those in ``skip``), built from the field's metadata: a choice added to Options is a flag here too. Read them
    back with ``Options().updated(vars(args))``; ``prefix`` goes before each help text."""
    from engines import registry
    from rag.pipeline import AUTO, Options

    engines = ", ".join([*registry.ENGINES, AUTO])
    for f in Options.choice_fields():
        if f.name in skip:
            continue
        meta = f.metadata
        flags = [meta["short"], meta["flag"]] if "short" in meta else [meta["flag"]]
        values = meta["values"]() if "values" in meta else None
        p.add_argument(*flags, dest=f.name, type=_TYPES.get(str(f.type), str), choices=values, default=None,
                       help=prefix + meta["help"].format(engines=engines))
