"""How long the event loop took to come back to a ticker, less the time the OS kept its thread off the CPU.

Under `make test` four test workers share two cores, so a process can wait on the run queue for a few hundred
milliseconds at any moment; that says nothing about the code. Work done on the loop (or a blocking wait on it)
keeps the thread busy or asleep, never runnable-but-waiting, so it still shows in full.
"""
from __future__ import annotations

import asyncio
import threading
import time


def run_queue_wait() -> float:
    """Seconds the calling thread has spent runnable but waiting for a CPU (Linux: /proc/.../schedstat)."""
    with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as fh:
        return int(fh.read().split()[1]) / 1e9


async def tick(gaps: list[float], interval: float = 0.01) -> None:
    """Until cancelled: sleep ``interval`` and append how long that took, less the thread's run-queue wait."""
    while True:
        start, waited = time.perf_counter(), run_queue_wait()
        await asyncio.sleep(interval)
        gaps.append(time.perf_counter() - start - (run_queue_wait() - waited))
