"""Retrieval turns (rag.scheduler's second line): retrievals and quotes LRC_RETRIEVAL_AT_ONCE at a time per
event loop, taken in a fair order, and a /v1 retrieval held back while its engine's line is long enough.

``async with retrieval_turn(): ...`` (rag.pipeline, around the retrieval and the quote) takes its place
from the answer's arrival, which ``rag.scheduler.counted`` puts in ``current`` for the steps it runs (an
``Arrival``: its user, lane, gate, arrival order). Never waits for a slot of the gates.
"""
from __future__ import annotations

import asyncio
import contextvars
import itertools

from rag.config import settings

current: contextvars.ContextVar = contextvars.ContextVar("lrc_arrival", default=None)  # the answer's Arrival

PREFETCH = 1  # /v1 answers whose prompt is built, beyond the slots, before another /v1 retrieval starts


class _Turns:
    """One event loop's retrieval turns: at most ``count`` at once; who goes next: the chat's before /v1's
    (LRC_QUEUE_CHAT_FIRST), then the user with the fewest retrievals in hand or waiting (users take turns),
    then the earliest arrival. A /v1 retrieval for an engine whose line holds its slots' answers and PREFETCH
    more already waits, unless its answer will start before every ready one (``overtakes``) (its place was said on arrival and is said again while it waits; its quote then comes
    shortly before its turn, not at once), so the answers being generated do not share the cores with every
    later arrival's retrieval at once. The chat's retrievals never wait for the line (its quote: at once)."""

    def __init__(self, count: int, loop: asyncio.AbstractEventLoop):
        self.count, self.loop = count, loop
        self.holding: list[object | None] = []
        self.waiting: list[tuple[tuple, asyncio.Future, object | None]] = []
        self.order = itertools.count()

    def key(self, arrival: object | None) -> tuple:
        if arrival is None:
            return (1, 0, next(self.order))
        mine = sum(1 for a in self.holding if a is not None and a.user == arrival.user)
        mine += sum(1 for _, _, a in self.waiting if a is not None and a.user == arrival.user)
        late = arrival.api and settings().queue_chat_first
        return (int(late), mine, arrival.seq)

    def may_start(self, arrival: object | None) -> bool:
        if arrival is None or not arrival.api or arrival.gate is None or arrival.retrieving:
            return True
        g = arrival.gate
        if g.ready() + sum(a.retrieving for a in g.arrived) < g.slots + PREFETCH:
            return True
        return overtakes(g, arrival) and not any(a.retrieving for a in g.arrived)

    def pump(self) -> None:
        """Starts the waiting retrievals that may start now, best first."""
        for entry in sorted(self.waiting, key=lambda e: e[0]):
            if len(self.holding) >= self.count:
                break
            _, future, arrival = entry
            if future.done():
                self.waiting.remove(entry)
            elif self.may_start(arrival):
                self.waiting.remove(entry)
                self.hold(arrival)
                future.set_result(None)

    def hold(self, arrival: object | None) -> None:
        self.holding.append(arrival)
        if arrival is not None:
            arrival.retrieving = True

    async def take(self, arrival: object | None) -> None:
        if len(self.holding) < self.count and not self.waiting and self.may_start(arrival):
            self.hold(arrival)
            return
        entry = (self.key(arrival), self.loop.create_future(), arrival)
        self.waiting.append(entry)
        self.pump()
        try:
            await entry[1]
        except BaseException:
            if entry in self.waiting:
                self.waiting.remove(entry)
            elif entry[1].done() and not entry[1].cancelled():  # its turn came as it was cancelled
                self.give(arrival)
            raise

    def give(self, arrival: object | None) -> None:
        self.holding.remove(arrival)
        self.pump()


def overtakes(gate, arrival) -> bool:
    """Whether ``arrival``'s answer will start before every answer waiting ready in its lane: its user was
    served strictly longer ago (or never) than each of theirs. Then holding its retrieval back for the line
    would only make it wait behind an answer it overtakes (a greedy user's prepared one), so it may retrieve
    now; one such retrieval at a time (``may_start``). A burst of new users overtakes nobody (all never
    served): the line's PREFETCH holds."""
    lane = gate.lanes[gate.lane_of(arrival.lane)]
    waiting = [t for line in lane.waiting.values() for t in line]
    mine = lane.served.get(arrival.user, -1)
    return bool(waiting) and all(t.user != arrival.user and mine < lane.served.get(t.user, -1) for t in waiting)


class _Turn:
    """``async with retrieval_turn():`` one retrieval's (or quote's) turn."""

    def __init__(self, turns: _Turns):
        self.turns, self.arrival = turns, current.get()

    async def __aenter__(self) -> "_Turn":
        await self.turns.take(self.arrival)
        return self

    async def __aexit__(self, *exc) -> None:
        self.turns.give(self.arrival)


_turns: dict[int, _Turns] = {}


def retrieval_turn() -> _Turn:
    """A turn among the running loop's retrievals and quotes (LRC_RETRIEVAL_AT_ONCE at once; never waits for
    a slot of the gates, only for other retrievals and, for /v1, for the engine's line to shorten: see
    _Turns): ``async with retrieval_turn(): ...``; its place from the answer's arrival (``counted``)."""
    loop, count = asyncio.get_running_loop(), settings().retrieval_at_once
    found = _turns.get(id(loop))
    if found is None or found.loop is not loop:
        for key in [k for k, other in _turns.items() if other.loop.is_closed()]:
            del _turns[key]
        found = _turns[id(loop)] = _Turns(count, loop)
    found.count = count
    return _Turn(found)


def pump(loop: asyncio.AbstractEventLoop) -> None:
    """An engine's line changed on ``loop``: held-back retrievals that may start now start."""
    found = _turns.get(id(loop))
    if found is not None and found.loop is loop:
        found.pump()
