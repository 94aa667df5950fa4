"""One module per `python -m rag` command (see rag/cli.py)."""
from __future__ import annotations

import asyncio
import sys
from typing import Awaitable


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
