"""The fair queue in front of each engine: who generates next, and where everybody else stands.

Each engine has a :class:`Gate` with its slots (answers generated at once: ``settings().slots(name)``,
LRC_ONNX_SLOTS, LRC_FOUNDRY_SLOTS). ``rag.answering.generate`` takes a :class:`Ticket` with ``enter``
once the prompt is built (retrieval and the quote never wait here) and holds it for the generation:

    ticket = enter(engine_name, user, lane)       # raises QueueFull (category BUSY) when the line is full
    async for queued in ticket.wait():            # Queued(position, eta_s) while it waits, as it moves
        ...
    ...generate...
    ticket.release(measured=True)                 # frees the slot; the answer's time feeds the estimate

Order: the chat's questions go before /v1's when both wait (lane CHAT before API, LRC_QUEUE_CHAT_FIRST;
off: one lane); inside a lane users take turns (round-robin: the next user is the one served longest
ago, a user never served first), and each user's own requests start in the order they came. So a user
with ten waiting requests delays another user's single one by at most the answer already running.

Bounds: a user's questions beyond LRC_RATE_PER_MINUTE in the last minute are refused (``admit``; QueueFull
with ``retry_after``), before any work. A request that would have to wait is refused (``QueueFull``, with ``retry_after``) when
LRC_MAX_WAITING requests wait already, or LRC_MAX_WAITING_PER_USER of its user's; nothing accepted is
ever dropped. Leaving (the stop button, ``Control.cancel``, a client gone, the task cancelled) takes the
ticket out of the line at once, or frees its slot; nothing else is touched.

On arrival: an answer that will generate is counted (``arrive``, ``counted``) before its retrieval (``Arrival``, until
its ticket is taken or it ends): it hears its place at once (``Arrival.place``: the answers running, waiting
and arrived before it; refined by the ticket once it waits), and a full line refuses it before any work.

The estimate: each gate keeps a running mean of its measured answer times (slot taken to slot freed,
answers that ended on their own); a waiting ticket's wait is simulated from the running answers' elapsed
time and that mean. Pure asyncio: the state belongs to the event loop that uses it (one gate per engine
and loop), no thread touches it. LRC_QUEUE=0 turns it off (every ticket starts at once, no bounds).

Retrieval and the quote take a ``retrieval_turn`` (rag.scheduler.turns: LRC_RETRIEVAL_AT_ONCE at once, also
with the queue off): under load they run one or two at a time, quickly, instead of all at once beside the
model, the chat's first, users in turn; a /v1 answer's retrieval waits while its engine's line already holds
the slots' answers and PREFETCH more (its quote then comes shortly before its turn), so the answers being
generated keep the cores. ``counted`` says the place again every HEARTBEAT_S while a step takes long.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections import deque
from typing import AsyncIterator

from engines.base import EngineError, ErrorCategory
from rag.config import settings
from rag.events import Failed, Queued
from rag.scheduler.turns import current as _current, pump as _pump_turns, retrieval_turn  # noqa: F401 (re-exported)

_arrivals = itertools.count()
CHAT, API = "chat", "api"  # the lanes: the chat's questions, the API's (batch) requests
HEARTBEAT_S = 5.0  # a waiting ticket hears its place at least this often (keeps a /v1 stream alive)
SMOOTHING = 0.3  # weight of the newest answer time in the running mean
UNMEASURED_S = 10.0  # an answer's time before one was measured (only for Retry-After)


class QueueFull(EngineError):
    """Too many requests wait already: nothing was queued; ``retry_after`` says when to try again."""

    category = ErrorCategory.BUSY

    def __init__(self, message: str, hint: str, retry_after: float):
        super().__init__(message, hint)
        self.retry_after = retry_after


class RateLimited(QueueFull):
    """The user asked LRC_RATE_PER_MINUTE questions in the last minute already (see ``admit``)."""


class Ticket:
    """One answer's place in its engine's line (see the module docstring)."""

    def __init__(self, gate: "Gate | None", user: str, lane: str):
        self.gate, self.user, self.lane = gate, user, lane
        self.engine = gate.name if gate is not None else None
        self.granted = gate is None  # without a gate (the queue off): started at once
        self.seq = next(_arrivals)
        self.left = False
        self.started = time.perf_counter()  # when the slot was taken
        self.changed = asyncio.Event()

    async def wait(self) -> AsyncIterator[Queued]:
        """Yields a Queued event while this ticket waits, each time its place or estimate changes (and at
        least every HEARTBEAT_S); ends when it may generate, or when it left the line."""
        said = None
        while not (self.granted or self.left):
            position, eta = self.gate.place(self)
            now = (position, None if eta is None else round(eta))
            if now != said:
                said = now
                yield Queued(position, eta)
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), HEARTBEAT_S)
            except asyncio.TimeoutError:
                said = None  # said again: the client knows it is still alive

    def release(self, measured: bool = False) -> None:
        """Leave the line, or free the slot (``measured``: the answer ended on its own; its time counts).
        Safe to call more than once."""
        if self.left:
            return
        self.left = True
        self.changed.set()
        if self.gate is not None:
            self.gate.release(self, measured)


class Arrival:
    """An answer counted on its engine's gate from its arrival until ``leave`` (its ticket taken, or it
    ended): the answers that arrive later count it ahead of them."""

    def __init__(self, gate: "Gate | None", user: str, lane: str = CHAT):
        self.gate, self.user, self.lane = gate, user, lane
        self.seq = next(_arrivals)
        self.api = lane == API  # the API's lane: its retrieval may wait for the line (rag.scheduler.turns)
        self.retrieving = False  # it took its first retrieval turn
        self.changed = asyncio.Event()  # its gate's line changed (``counted`` says a new place at once)
        if gate is not None:
            gate.arrived.append(self)

    def place(self) -> Queued | None:
        """Where it would stand if it waited now (None: it would start at once, or the queue is off)."""
        return None if self.gate is None else self.gate.arrival_place(self)

    def leave(self) -> None:
        """Safe to call more than once."""
        if self.gate is not None and self in self.gate.arrived:
            self.gate.arrived.remove(self)
            self.gate._notify()


class _Lane:
    """Waiting tickets of one lane: each user's in arrival order; the next user is the one served longest
    ago (never: first), ties in arrival order of their first waiting ticket."""

    def __init__(self) -> None:
        self.waiting: dict[str, deque[Ticket]] = {}
        self.served: dict[str, int] = {}  # user -> when last served (a counter)
        self.clock = 0

    def add(self, ticket: Ticket) -> None:
        self.waiting.setdefault(ticket.user, deque()).append(ticket)

    def remove(self, ticket: Ticket) -> None:
        line = self.waiting.get(ticket.user)
        if line is not None and ticket in line:
            line.remove(ticket)
            if not line:
                del self.waiting[ticket.user]

    def mark(self, user: str) -> None:
        """``user`` was just served: the back of the rotation."""
        self.clock += 1
        self.served[user] = self.clock
        if len(self.served) > 4096:  # forget users who wait for nothing
            self.served = {u: c for u, c in self.served.items() if u in self.waiting or c > self.clock - 1024}

    def _turns(self, served: dict[str, int], lines: dict[str, list[Ticket]]):
        """Tickets in the order they would start if nobody else came (``served``/``lines``: copies, used up)."""
        clock = self.clock
        while lines:
            user = min(lines, key=lambda u: (served.get(u, -1), lines[u][0].seq))
            yield lines[user].pop(0)
            if not lines[user]:
                del lines[user]
            clock += 1
            served[user] = clock

    def pop_next(self) -> Ticket | None:
        ticket = next(self._turns(dict(self.served), {u: list(q) for u, q in self.waiting.items()}), None)
        if ticket is not None:
            self.remove(ticket)
        return ticket

    def order(self) -> list[Ticket]:
        return list(self._turns(dict(self.served), {u: list(q) for u, q in self.waiting.items()}))


class Gate:
    """One engine's slots and line (use ``enter``; one gate per engine and event loop)."""

    def __init__(self, name: str):
        self.name = name
        self.running: list[Ticket] = []
        self.lanes = {CHAT: _Lane(), API: _Lane()}
        self.mean: float | None = None  # seconds: the running mean of measured answer times
        self.measured = 0
        self.loop: asyncio.AbstractEventLoop | None = None  # set by ``gate``
        self.arrived: list[Arrival] = []  # answers preparing (retrieval, quote), in arrival order

    @property
    def slots(self) -> int:
        return max(1, settings().slots(self.name))

    def waiting(self) -> list[Ticket]:
        """Every waiting ticket, in the order they would start."""
        return [t for lane in self.lanes.values() for t in lane.order()]

    @staticmethod
    def lane_of(lane: str) -> str:
        """The lane a request of ``lane`` waits in: the API's own while the chat goes first, else one."""
        return lane if lane == API and settings().queue_chat_first else CHAT

    def enter(self, user: str, lane: str, accepted: bool = False) -> Ticket:
        """``accepted``: its arrival was counted and let in (``check_arrival``): never refused now."""
        lane = self.lane_of(lane)
        ticket = Ticket(self, user, lane)
        waiting = self.waiting()
        if len(self.running) < self.slots and not waiting:
            self._start(ticket)
            self._notify()  # an answer arrived before it and told it would start at once waits now
            return ticket
        cfg = settings()
        mine = [t for t in waiting if t.user == user]
        if not accepted and len(waiting) >= cfg.max_waiting:
            raise self._full(f"{len(waiting)} questions are waiting for this engine already", waiting)
        if not accepted and len(mine) >= cfg.max_waiting_per_user:
            raise self._full(f"{len(mine)} of your questions are waiting already", mine)
        self.lanes[lane].add(ticket)
        self._notify()
        return ticket

    def check_arrival(self, user: str, lane: str = CHAT) -> Arrival:
        """Counts an answer from its arrival; raises QueueFull when it would wait and the line is full
        (counting the answers arrived before it as waiting)."""
        ahead = self.waiting() + self.arrived
        if len(self.running) + len(ahead) >= self.slots:
            cfg = settings()
            waits = self.waiting()
            waiting = len(ahead) - (self.slots - len(self.running))
            if waiting >= cfg.max_waiting:
                raise self._full(f"{waiting} questions are waiting for this engine already", waits)
            mine = [t for t in ahead if t.user == user]
            if len(mine) >= cfg.max_waiting_per_user:  # retry when the first of them starts (users take turns)
                raise self._full(f"{len(mine)} of your questions are waiting already",
                                 [t for t in waits if t.user == user])
        return Arrival(self, user, lane)

    def arrival_place(self, arrival: Arrival) -> Queued | None:
        ahead = len(self.waiting()) + (self.arrived.index(arrival) if arrival in self.arrived else 0)
        position = len(self.running) + ahead - self.slots + 1
        return Queued(position, self._eta(position)) if position >= 1 else None

    def _full(self, why: str, waiting: list[Ticket]) -> QueueFull:
        """The refusal: retry once the first of ``waiting`` (those that fill the line) is likely to start."""
        eta = self.place(waiting[0])[1] if waiting else None
        if eta is None and self.mean is not None:  # none of them waits with a ticket yet: after the line ahead
            eta = self._eta(len(self.waiting()) + 1)
        retry = float(max(1, math.ceil(eta if eta is not None else (self.mean or UNMEASURED_S) / self.slots)))
        return QueueFull(f"The server is busy: {why}.", f"Retry in {retry:.0f} s.", retry)

    def place(self, ticket: Ticket) -> tuple[int, float | None]:
        """(position from 1, estimated seconds until it starts; None before any answer was measured)."""
        order = self.waiting()
        position = order.index(ticket) + 1 if ticket in order else 1
        return position, self._eta(position)

    def _eta(self, position: int) -> float | None:
        """Seconds until the ``position``-th waiting answer starts (None before any answer was measured)."""
        if self.mean is None:
            return None
        now = time.perf_counter()
        free = [max(self.mean - (now - t.started), 0.0) for t in self.running]
        free += [0.0] * max(self.slots - len(free), 0)
        heapq.heapify(free)
        start = 0.0
        for _ in range(position):  # the tickets ahead take the slots as they free
            start = heapq.heappop(free)
            heapq.heappush(free, start + self.mean)
        return start

    def release(self, ticket: Ticket, measured: bool) -> None:
        if ticket in self.running:
            self.running.remove(ticket)
            if measured:
                seconds = time.perf_counter() - ticket.started
                self.mean = seconds if self.mean is None else (1 - SMOOTHING) * self.mean + SMOOTHING * seconds
                self.measured += 1
        else:
            self.lanes[ticket.lane].remove(ticket)
        self._dispatch()

    def _start(self, ticket: Ticket) -> None:
        ticket.granted, ticket.started = True, time.perf_counter()
        self.lanes[ticket.lane].mark(ticket.user)
        self.running.append(ticket)
        ticket.changed.set()

    def _dispatch(self) -> None:
        while len(self.running) < self.slots:
            ticket = next((t for lane in self.lanes.values() if (t := lane.pop_next()) is not None), None)
            if ticket is None:
                break
            self._start(ticket)
        self._notify()

    def _notify(self) -> None:
        for ticket in self.waiting():
            ticket.changed.set()
        for arrival in self.arrived:
            arrival.changed.set()
        if self.loop is not None:
            _pump_turns(self.loop)  # a /v1 retrieval held back while enough answers were ready may go now

    def ready(self) -> int:
        """Answers running or waiting with their prompt built (tickets)."""
        return len(self.running) + sum(len(q) for lane in self.lanes.values() for q in lane.waiting.values())


_gates: dict[tuple[int, str], Gate] = {}


def gate(name: str) -> Gate:
    """Engine ``name``'s gate in the running event loop."""
    loop = asyncio.get_running_loop()
    key = (id(loop), name)
    found = _gates.get(key)
    if found is None or found.loop is not loop:
        for k in [k for k, g in _gates.items() if g.loop is None or g.loop.is_closed()]:
            del _gates[k]
        found = _gates[key] = Gate(name)
        found.loop = loop
    return found


def enter(name: str, user: str | None, lane: str = CHAT) -> Ticket:
    """A ticket for one answer on engine ``name`` for ``user`` (None: one anonymous user); started at once
    when a slot is free and nobody waits. Raises QueueFull when the line is full (see the module docstring).
    The answer's arrival on that gate (``counted``, in this task's context) leaves once the ticket is in line."""
    if not settings().queue:
        return Ticket(None, user or "", lane)
    g = gate(name)
    arrival = _current.get()
    accepted = arrival is not None and arrival.gate is g and arrival in g.arrived
    ticket = g.enter(user or "", lane, accepted)
    if accepted:
        arrival.leave()
    return ticket


def arrive(name: str | None, user: str | None, lane: str = CHAT) -> Arrival:
    """Counts an answer for engine ``name`` (None: none, nothing counted) from its arrival, before its
    retrieval, until ``leave``; raises QueueFull when it would wait in a full line (see the module docstring)."""
    if name is None or not settings().queue:
        return Arrival(None, user or "", lane)
    return gate(name).check_arrival(user or "", lane)


async def counted(name: str | None, user: str | None, steps: AsyncIterator, until, lane: str = CHAT) -> AsyncIterator:
    """``steps`` (an answer's retrieval and quote) counted on engine ``name``'s line until the item for
    which ``until`` is true (its ticket takes over) or their end: a Queued comes first when the answer will
    wait, again when its place changes (another answer that arrived after it started first) and at least
    every HEARTBEAT_S while a step takes long (a /v1 retrieval held back: see ``retrieval_turn``); a full line, or a user beyond LRC_RATE_PER_MINUTE (``admit``), yields a Failed
    (BUSY) instead of any step. The steps' ``retrieval_turn``s are taken in the order ``lane`` and
    ``user`` give (see there)."""
    try:
        admit(user)
        arrival = arrive(name, user, lane)
    except QueueFull as err:
        yield Failed.of(err)
        return
    _current.set(arrival)  # the steps run in this task (or copies of its context): their retrieval turns
    if (task := asyncio.current_task()) is not None:  # the answer ended without a ticket: it leaves then
        task.add_done_callback(lambda _: arrival.leave())
    items, prepared = steps.__aiter__(), False
    try:
        if (queued := arrival.place()) is not None:
            yield queued
        said = queued and queued.position
        while True:
            step = asyncio.ensure_future(items.__anext__())
            try:
                while True:
                    arrival.changed.clear()
                    changed = asyncio.ensure_future(arrival.changed.wait())
                    done, _ = await asyncio.wait({step, changed}, timeout=HEARTBEAT_S,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    changed.cancel()
                    if step in done:
                        break
                    queued = arrival.place()
                    if queued is not None and (changed not in done or queued.position != said):
                        said = queued.position
                        yield queued  # its place moved, or still in line: said again (keeps a /v1 stream alive)
            except BaseException:
                step.cancel()
                await asyncio.wait({step})  # ended before the steps are closed
                raise
            try:
                item = step.result()
            except StopAsyncIteration:
                break
            if until(item):  # it stays counted (and its retrieval too) until its ticket is in line
                prepared = True
            yield item
    finally:
        if not prepared:
            arrival.leave()
        await items.aclose()


_asked: dict[str, deque[float]] = {}  # user -> when their questions of the last minute came (monotonic)


def admit(user: str | None) -> None:
    """Counts one question of ``user`` (None: the anonymous one); raises QueueFull (BUSY, ``retry_after``:
    when the oldest of the last minute's leaves the window) when LRC_RATE_PER_MINUTE came already in the
    last 60 s (0: no limit). A refused question is not counted. Raises RateLimited (a QueueFull)."""
    limit = settings().rate_per_minute
    if not limit:
        return
    now, key = time.monotonic(), user or ""
    asked = _asked.setdefault(key, deque())
    while asked and asked[0] <= now - 60:
        asked.popleft()
    if len(asked) >= limit:
        retry = float(max(1, math.ceil(asked[0] + 60 - now)))
        raise RateLimited(f"You asked {len(asked)} question{'s' * (len(asked) != 1)} in the last minute (the limit is {limit} a minute).",
                          f"Retry in {retry:.0f} s.", retry)
    asked.append(now)
    if len(_asked) > 4096:  # forget users who asked nothing in the last minute
        for other in [u for u, times in _asked.items() if not times or times[-1] <= now - 60]:
            del _asked[other]
