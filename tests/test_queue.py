"""rag.scheduler, the fair queue in front of each engine: order (round-robin across users, first come first
served within one, the chat before the API), places and estimates, bounds, leaving the line. Real asyncio
tasks stand for the answers (each gate here has its own engine name, so tests never share a line); the
last tests go through the real pipeline with the real in-process engine."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from engines.base import ErrorCategory
from rag import pipeline as pl, scheduler
from rag.events import Failed, Queued


async def settle() -> None:
    """Lets the woken tasks run (a few loop turns: a wait_for wakes through an inner task)."""
    for _ in range(20):
        await asyncio.sleep(0)


class Worker:
    """One request: takes its ticket, records what it heard while waiting and when it started, holds the
    slot until ``finish`` is set."""

    def __init__(self, engine: str, user: str, name: str, started: list, lane: str = scheduler.CHAT):
        self.name, self.heard, self.finish = name, [], asyncio.Event()
        self.ticket = scheduler.enter(engine, user, lane)
        self.task = asyncio.create_task(self._run(started))

    async def _run(self, started: list) -> None:
        try:
            async for queued in self.ticket.wait():
                self.heard.append(queued)
            if self.ticket.left:
                return
            started.append(self.name)
            await self.finish.wait()
        finally:
            self.ticket.release(measured=self.finish.is_set())


async def run_all(workers: list[Worker], started: list) -> None:
    """Let each running worker finish in turn until all have run."""
    while any(not w.task.done() for w in workers):
        await settle()
        for w in workers:
            if w.name in started and not w.finish.is_set():
                w.finish.set()
                break
        await settle()


async def test_users_take_turns_and_each_users_requests_keep_their_order():
    started: list = []
    first = Worker("t-order", "alice", "a1", started)
    await settle()
    assert first.ticket.granted and started == ["a1"]
    greedy = [Worker("t-order", "greedy", f"g{i}", started) for i in range(1, 6)]
    bob = Worker("t-order", "bob", "b1", started)
    alice2 = Worker("t-order", "alice", "a2", started)
    await settle()
    # bob's single request is second in line: the greedy user's five delay it by one answer only
    assert bob.heard[-1].position == 2 and greedy[0].heard[-1].position == 1
    assert alice2.heard[-1].position == 3
    await run_all([first, *greedy, bob, alice2], started)
    assert started == ["a1", "g1", "b1", "a2", "g2", "g3", "g4", "g5"]
    # every waiting worker heard its place move towards the front
    assert [q.position for q in greedy[-1].heard] == sorted({q.position for q in greedy[-1].heard}, reverse=True)
    assert greedy[-1].heard[-1].position == 1


async def test_a_newcomer_waits_only_for_the_greedy_users_running_answer():
    started: list = []
    greedy = [Worker("t-greedy", "greedy", f"g{i}", started) for i in range(10)]
    await settle()
    other = Worker("t-greedy", "other", "other", started)
    await settle()
    assert started == ["g0"] and other.heard[-1].position == 1
    await run_all([*greedy, other], started)
    assert started[:2] == ["g0", "other"]


async def test_the_chat_goes_before_the_api_and_the_setting_turns_that_off(monkeypatch):
    for chat_first, expected in (("1", ["x", "chat", "api"]), ("0", ["x", "api", "chat"])):
        monkeypatch.setenv("LRC_QUEUE_CHAT_FIRST", chat_first)
        started: list = []
        engine = f"t-lanes-{chat_first}"
        running = Worker(engine, "x", "x", started)
        api = Worker(engine, "batch", "api", started, lane=scheduler.API)
        chat = Worker(engine, "person", "chat", started, lane=scheduler.CHAT)
        await run_all([running, api, chat], started)
        assert started == expected


async def test_two_slots_run_two_at_once(monkeypatch):
    gate = scheduler.gate("t-slots")
    monkeypatch.setattr(type(gate), "slots", property(lambda self: 2))
    started: list = []
    workers = [Worker("t-slots", f"u{i}", f"w{i}", started) for i in range(3)]
    await settle()
    assert started == ["w0", "w1"] and workers[2].heard[-1].position == 1
    await run_all(workers, started)
    assert started == ["w0", "w1", "w2"]


async def test_a_full_line_refuses_with_busy_and_a_retry_time(monkeypatch):
    monkeypatch.setenv("LRC_MAX_WAITING_PER_USER", "2")
    monkeypatch.setenv("LRC_MAX_WAITING", "3")
    started: list = []
    workers = [Worker("t-full", "greedy", "run", started)]
    workers += [Worker("t-full", "greedy", f"g{i}", started) for i in range(2)]
    with pytest.raises(scheduler.QueueFull) as caught:
        scheduler.enter("t-full", "greedy", scheduler.CHAT)
    err = caught.value
    assert err.category == ErrorCategory.BUSY and err.retry_after >= 1
    assert "2 of your questions are waiting" in err.message and err.hint == f"Retry in {err.retry_after:.0f} s."
    failed = Failed.of(err)  # what the chat and /v1 receive
    assert failed.category == ErrorCategory.BUSY and failed.retry_after == err.retry_after
    workers.append(Worker("t-full", "other", "o1", started))  # another user still has room
    with pytest.raises(scheduler.QueueFull, match="3 questions are waiting"):
        scheduler.enter("t-full", "third", scheduler.CHAT)
    await run_all(workers, started)
    assert sorted(started) == ["g0", "g1", "o1", "run"], "nothing accepted was dropped"


async def test_leaving_the_line_takes_effect_at_once_and_frees_nothing_else():
    started: list = []
    running = Worker("t-leave", "a", "run", started)
    first = Worker("t-leave", "b", "first", started)
    second = Worker("t-leave", "c", "second", started)
    await settle()
    assert second.heard[-1].position == 2
    first.task.cancel()  # the client went away / the task was cancelled
    await settle()
    assert first.task.cancelled() and first.name not in started
    assert second.heard[-1].position == 1, "the ones behind move up at once"
    assert running.ticket in scheduler.gate("t-leave").running and not second.ticket.granted, \
        "the running answer keeps its slot"
    second.ticket.release()  # what Control.cancel does for a waiting ticket
    await settle()
    assert second.task.done() and scheduler.gate("t-leave").waiting() == []
    await run_all([running], started)
    assert started == ["run"]


async def test_the_estimate_comes_from_measured_answer_times():
    started: list = []
    w = Worker("t-eta", "a", "one", started)
    await settle()
    assert w.ticket.granted
    waiting = Worker("t-eta", "b", "two", started)
    await settle()
    assert waiting.heard[-1].eta_s is None and waiting.heard[-1].text == "1st in line"
    await asyncio.sleep(0.3)
    await run_all([w, waiting], started)
    gate = scheduler.gate("t-eta")
    assert gate.measured == 2 and 0.2 < gate.mean < 5  # the first took >= 0.3 s, the second ~0 (weight 0.3)
    third = Worker("t-eta", "c", "three", started)
    fourth = Worker("t-eta", "d", "four", started)
    await settle()
    position, eta = gate.place(fourth.ticket)
    assert position == 1 and 0 < eta <= gate.mean  # the running one has part of a mean answer left
    assert fourth.heard[-1].text.startswith("1st in line — about ")
    await run_all([third, fourth], started)
    assert Queued(3, 9.6).text == "3rd in line — about 10 s" and Queued(12).text == "12th in line"


async def test_the_queue_off_starts_everything_at_once(monkeypatch):
    monkeypatch.setenv("LRC_QUEUE", "0")
    tickets = [scheduler.enter("t-off", "a", scheduler.CHAT) for _ in range(20)]
    assert all(t.granted for t in tickets)


# ------------------------------------------------------------------------------------ the real pipeline
QUESTION = "How do I calibrate a Zorblax widget?"


async def ask(lib, client: str, control=None, heard: list | None = None) -> list:
    """``client``'s answer to QUESTION (SmolLM2, greedy, short), every event (``heard``: also each
    event's arrival time, perf_counter)."""
    o = pl.Options(engine="onnx", model="smollm2", top_k=2, temperature=0.0, max_new_tokens=24, client=client)
    events = []
    async for ev in pl.answer(QUESTION, [], o, control, lib=lib):
        events.append(ev)
        if heard is not None:
            heard.append((time.perf_counter(), ev))
    return events


@pytest.mark.slow
async def test_answers_wait_their_turn_in_the_real_pipeline(zorblax_library, smollm2_dir, monkeypatch):
    """Three users ask at once with one slot: the quote comes at once for all, the model answers one at a
    time, the later ones hear their place, a stopped one leaves the line without an answer."""
    monkeypatch.setenv("LRC_ONNX_SLOTS", "1")
    await ask(zorblax_library, "warm")  # the model is loaded, its time measured
    stopped = pl.Control()
    runs = [asyncio.create_task(ask(zorblax_library, f"user{i}")) for i in range(3)]
    quitter = asyncio.create_task(ask(zorblax_library, "quitter", stopped))
    while not any(t.user == "quitter" for t in scheduler.gate("onnx").waiting()):
        await asyncio.sleep(0.01)
    await stopped.cancel()
    assert not any(t.user == "quitter" for t in scheduler.gate("onnx").waiting()), "out of the line at once"
    answers = await asyncio.gather(*runs)
    quit_events = await quitter
    assert not any(isinstance(e, (pl.Token, pl.Done)) for e in quit_events)
    assert any(isinstance(e, pl.Quoted) for e in quit_events), "the quote never waits"
    queued = [[e for e in events if isinstance(e, pl.Queued)] for events in answers]
    assert sum(1 for q in queued if q) >= 2, "two of three waited for the first"
    on_arrival = 0
    for events, q in zip(answers, queued):
        kinds = [type(e).__name__ for e in events]
        assert kinds[-1] == "Done" and events[-1].answer.strip()
        if q:  # every place before the model's first token, and the quote never waits for the model
            assert kinds.index("Retrieved") < kinds.index("Quoted")
            assert len(kinds) - kinds[::-1].index("Queued") - 1 < kinds.index("Token")
            assert q[-1].eta_s is not None
            # on arrival, before its retrieval; or, told it would start at once, as soon as another overtook it
            on_arrival += kinds.index("Queued") < kinds.index("Retrieved")
    assert on_arrival >= 1, "an answer arriving behind another hears its place on arrival"
    after_quote = [[e for e in events[[type(x) for x in events].index(pl.Quoted):] if isinstance(e, pl.Queued)]
                   for events in answers]
    assert any(after_quote), "the last to arrive waited for the model after its quote"
    assert all(q[-1].position == 1 for q in after_quote if q), "and moved to the front"
    done = [e[-1] for e in answers]
    assert len({d.answer for d in done}) == 1, "greedy answers to one question are the same: nothing mixed"


@pytest.mark.slow
async def test_a_full_line_is_a_busy_failure_in_the_pipeline(zorblax_library, smollm2_dir, monkeypatch):
    monkeypatch.setenv("LRC_MAX_WAITING", "0")
    first = asyncio.create_task(ask(zorblax_library, "a"))
    while not scheduler.gate("onnx").running:
        await asyncio.sleep(0.01)
    events = await ask(zorblax_library, "b")
    failed = events[-1]
    assert isinstance(failed, pl.Failed) and failed.category == ErrorCategory.BUSY
    assert failed.retry_after >= 1 and "Retry in" in failed.text
    assert isinstance((await first)[-1], pl.Done)


class Timed:
    """The real library, its ``retrieve`` calls timed (start, end: perf_counter), to see how many overlap."""

    def __init__(self, lib):
        self._lib, self.calls, self._lock = lib, [], threading.Lock()

    def __getattr__(self, name):
        return getattr(self._lib, name)

    def retrieve(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._lib.retrieve(*args, **kwargs)
        finally:
            with self._lock:
                self.calls.append((start, time.perf_counter()))

    def most_at_once(self) -> int:
        edges = sorted([(s, 1) for s, _ in self.calls] + [(e, -1) for _, e in self.calls])
        running = most = 0
        for _, step in edges:
            running += step
            most = max(most, running)
        return most


@pytest.mark.slow
@pytest.mark.parametrize("at_once", ["1", "2"])
async def test_waiting_answers_hear_their_place_at_once_and_retrieve_a_few_at_a_time(
        zorblax_library, smollm2_dir, monkeypatch, at_once):
    """Six answers arrive while one generates (one slot): each hears its place before its retrieval, within
    1 s, and no more than LRC_RETRIEVAL_AT_ONCE retrievals run at once; all are answered in full."""
    monkeypatch.setenv("LRC_ONNX_SLOTS", "1")
    monkeypatch.setenv("LRC_RETRIEVAL_AT_ONCE", at_once)
    await ask(zorblax_library, "warm")
    holder = asyncio.create_task(ask(zorblax_library, "holder"))
    while not scheduler.gate("onnx").running:
        await asyncio.sleep(0.01)
    lib = Timed(zorblax_library)
    heard = [[] for _ in range(6)]
    t0 = time.perf_counter()
    answers = await asyncio.gather(*(ask(lib, f"user{i}", heard=h) for i, h in enumerate(heard)))
    await holder
    for events, times in zip(answers, heard):
        kinds = [type(e).__name__ for e in events]
        assert kinds[0] == "Queued" and kinds.index("Queued") < kinds.index("Retrieved"), kinds
        assert times[0][0] - t0 < 1.0, "its place within 1 s of arriving"
        assert kinds[-1] == "Done" and events[-1].answer.strip()
    assert sorted(e[0].position for e in answers) == [1, 2, 3, 4, 5, 6], "places in arrival order"
    assert len(lib.calls) == 6 and lib.most_at_once() <= int(at_once), lib.calls


def test_retrieval_at_once_defaults_to_two(monkeypatch):
    from rag.config import settings

    monkeypatch.delenv("LRC_RETRIEVAL_AT_ONCE", raising=False)
    assert settings().retrieval_at_once == 2


@pytest.mark.slow
async def test_a_user_beyond_the_rate_limit_is_told_when_to_retry(zorblax_library, smollm2_dir, monkeypatch):
    from rag.chat.render import failure_text

    monkeypatch.setenv("LRC_RATE_PER_MINUTE", "1")
    first = await ask(zorblax_library, "rate-limited")
    assert isinstance(first[-1], pl.Done)
    refused = await ask(zorblax_library, "rate-limited")
    assert len(refused) == 1, "refused before any work"
    failed = refused[0]
    assert isinstance(failed, pl.Failed) and failed.category == ErrorCategory.BUSY and 1 <= failed.retry_after <= 60
    assert failure_text(failed) == (f"**⚠️ The server is busy:** You asked 1 question in the last minute (the limit "
                                    f"is 1 a minute). Retry in {failed.retry_after:.0f} s.")
    assert isinstance((await ask(zorblax_library, "someone-else"))[-1], pl.Done), "other users are not limited"


# ------------------------------------------------------------------------------------ retrieval turns
async def prepared_after_retrieval(log: list, name: str, hold: asyncio.Event | None = None):
    """An answer's steps: one retrieval turn (``log`` gets ``name`` when it starts), then its Prepared."""
    async with scheduler.retrieval_turn():
        log.append(name)
        if hold is not None:
            await hold.wait()
    yield "prepared"


async def consume(engine: str, user: str, steps, lane: str, heard: list | None = None) -> list:
    items = []
    async for item in scheduler.counted(engine, user, steps, until=lambda i: i == "prepared", lane=lane):
        items.append(item)
        if heard is not None and isinstance(item, Queued):
            heard.append(item)
    return items


async def test_retrieval_turns_go_to_the_chat_first_then_users_in_turn(monkeypatch):
    """One turn at a time: while one answer retrieves, the others line up; the chat's go first, then /v1's
    with each user's first before anyone's second, arrivals in order within that."""
    monkeypatch.setenv("LRC_RETRIEVAL_AT_ONCE", "1")
    monkeypatch.setenv("LRC_MAX_WAITING", "64")
    engine, log, hold = "t-turns", [], asyncio.Event()
    first = asyncio.create_task(consume(engine, "first", prepared_after_retrieval(log, "first", hold), scheduler.CHAT))
    await settle()
    assert log == ["first"]
    arrivals = [("greedy", "g1", scheduler.API), ("greedy", "g2", scheduler.API), ("bob", "b1", scheduler.API),
                ("carol", "c1", scheduler.CHAT), ("greedy", "g3", scheduler.API), ("dan", "d1", scheduler.CHAT)]
    tasks = []
    for user, name, lane in arrivals:
        tasks.append(asyncio.create_task(consume(engine, user, prepared_after_retrieval(log, name), lane)))
        await settle()
    assert log == ["first"], "the others wait for the turn"
    hold.set()
    await asyncio.gather(first, *tasks)
    assert log == ["first", "c1", "d1", "g1", "b1", "g2", "g3"]


async def test_an_api_retrieval_waits_while_the_engines_line_is_long_enough(monkeypatch):
    """One slot, one answer generating and one ready behind it: a /v1 answer's retrieval waits (hearing its
    place again every HEARTBEAT_S), a chat answer's does not; once the line shortens the /v1 one retrieves."""
    monkeypatch.setattr(scheduler, "HEARTBEAT_S", 0.05)
    engine, started, log = "t-prefetch", [], []
    running = Worker(engine, "a", "run", started)
    ready = Worker(engine, "b", "ready", started)
    await settle()
    assert scheduler.gate(engine).ready() == 2
    heard: list = []
    api = asyncio.create_task(consume(engine, "c", prepared_after_retrieval(log, "api"), scheduler.API, heard))
    chat = asyncio.create_task(consume(engine, "d", prepared_after_retrieval(log, "chat"), scheduler.CHAT))
    await chat
    await asyncio.sleep(0.3)
    assert log == ["chat"] and not api.done(), "the /v1 retrieval waits for the line"
    assert len(heard) >= 3 and all(q.position >= 1 for q in heard), "its place said again while it waits"
    running.finish.set()  # the running answer ends: the ready one starts, the line is one shorter
    await settle()
    await asyncio.wait_for(api, 5)
    assert log == ["chat", "api"]
    await run_all([running, ready], started)


async def test_a_cancelled_answer_gives_its_retrieval_turn_back(monkeypatch):
    monkeypatch.setenv("LRC_RETRIEVAL_AT_ONCE", "1")
    engine, log, hold = "t-turn-cancel", [], asyncio.Event()
    first = asyncio.create_task(consume(engine, "a", prepared_after_retrieval(log, "a", hold), scheduler.CHAT))
    await settle()
    waiting = asyncio.create_task(consume(engine, "b", prepared_after_retrieval(log, "b"), scheduler.CHAT))
    await settle()
    first.cancel()  # the client went away while it retrieved
    await settle()
    await asyncio.wait_for(waiting, 5)
    assert log == ["a", "b"] and first.cancelled()


async def test_a_user_refused_for_their_own_line_retries_when_their_first_request_starts(monkeypatch):
    """The greedy user's refusal (LRC_MAX_WAITING_PER_USER) says to retry when the first of their waiting
    requests is likely to start (users take turns, so after the others ahead of it), not when the line's
    first does."""
    monkeypatch.setenv("LRC_MAX_WAITING_PER_USER", "2")
    engine, started = "t-retry-mine", []
    gate = scheduler.gate(engine)
    gate.mean = 10.0  # measured answers of 10 s
    running = Worker(engine, "a", "run", started)
    others = [Worker(engine, f"u{i}", f"u{i}", started) for i in range(3)]
    greedy = [Worker(engine, "greedy", f"g{i}", started) for i in range(2)]
    await settle()
    assert gate.place(greedy[0].ticket)[0] == 4, "behind the three users who came first"
    with pytest.raises(scheduler.QueueFull) as caught:
        gate.check_arrival("greedy", scheduler.API)
    assert 30 <= caught.value.retry_after <= 40, caught.value.retry_after  # three answers ahead, one running
    with pytest.raises(scheduler.QueueFull) as caught:
        scheduler.enter(engine, "greedy", scheduler.CHAT)
    assert 30 <= caught.value.retry_after <= 40
    await run_all([running, *others, *greedy], started)


async def test_an_answer_overtaken_during_its_retrieval_hears_its_place_at_once(monkeypatch):
    """Told on arrival it would start at once, an answer whose retrieval is slower than a later one's hears
    its place as soon as that one starts (not at the next heartbeat)."""
    monkeypatch.setattr(scheduler, "HEARTBEAT_S", 60.0)
    engine, slow, heard = "t-overtaken", asyncio.Event(), []

    async def steps(hold: asyncio.Event | None):
        if hold is not None:
            await hold.wait()  # a slow retrieval
        yield "prepared"

    first = asyncio.create_task(consume(engine, "a", steps(slow), scheduler.API, heard))
    await settle()
    assert heard == [], "nobody ahead on arrival: no place"
    items = []
    async for item in scheduler.counted(engine, "b", steps(None), until=lambda i: i == "prepared"):
        items.append(item)
    assert isinstance(items[0], Queued) and items[-1] == "prepared"  # it arrived second
    ticket = scheduler.enter(engine, "b", scheduler.CHAT)  # the later answer generates first
    await settle()
    assert ticket.granted and [q.position for q in heard] == [1], "the first heard its place at once"
    slow.set()
    await asyncio.wait_for(first, 5)
    ticket.release(measured=True)


async def test_a_prepared_answer_counts_until_its_ticket_is_in_line(monkeypatch):
    """Between its quote and its ticket (the prompt being built) a /v1 answer still counts on its engine's
    line: another /v1 retrieval does not slip in then (it would put a second prepared answer ahead of a
    newcomer); once the ticket is in line the arrival is gone."""
    engine, started, log = "t-gap", [], []
    gate = scheduler.gate(engine)
    running = Worker(engine, "a", "run", started)
    go_on, tickets = asyncio.Event(), []

    async def prepared_then_ticket():
        await consume(engine, "x", prepared_after_retrieval(log, "x"), scheduler.API)
        await go_on.wait()  # the prompt being built
        tickets.append(scheduler.enter(engine, "x", scheduler.API))

    x = asyncio.create_task(prepared_then_ticket())
    await settle()
    assert log == ["x"] and len(gate.arrived) == 1, "prepared, no ticket yet: still counted"
    y = asyncio.create_task(consume(engine, "y", prepared_after_retrieval(log, "y"), scheduler.API))
    await settle()
    assert log == ["x"], "no other /v1 retrieval meanwhile"
    go_on.set()
    await x
    await settle()
    assert gate.arrived[0].user == "y" and len(gate.arrived) == 1 and log == ["x"], "x left when its ticket came"
    running.finish.set()
    await settle()
    await asyncio.wait_for(y, 5)
    assert log == ["x", "y"]
    tickets[0].release(measured=True)
    await run_all([running], started)


async def test_a_newcomer_retrieves_at_once_past_a_greedy_users_prepared_answer(monkeypatch):
    """The line is full (the greedy user's answer generating, their next one ready): a /v1 newcomer who was
    never served would start before that ready answer anyway, so its retrieval does not wait for the line and
    it starts right after the running answer; a second greedy request and another never-served user whose
    answer would not start first (a burst of new users: same rank as the ready one's user) still wait."""
    monkeypatch.setenv("LRC_QUEUE_CHAT_FIRST", "1")
    engine, started, log = "t-overtake", [], []
    running = Worker(engine, "greedy", "g1", started, scheduler.API)
    ready = Worker(engine, "greedy", "g2", started, scheduler.API)
    await settle()
    assert started == ["g1"] and scheduler.gate(engine).ready() == 2
    more = asyncio.create_task(consume(engine, "greedy", prepared_after_retrieval(log, "g3"), scheduler.API))
    newcomer = asyncio.create_task(consume(engine, "nina", prepared_after_retrieval(log, "nina"), scheduler.API))
    await asyncio.wait_for(newcomer, 5)
    assert log == ["nina"], "the newcomer retrieved while the line was full; the greedy user's third did not"
    late = Worker(engine, "nina", "n1", started, scheduler.API)  # its ticket, once its prompt is built
    running.finish.set()
    await settle()
    assert started == ["g1", "n1"], "the newcomer starts right after the running answer"

    # a burst: the ready answer's user was never served either: a later new user overtakes nobody
    engine2, started2, log2 = "t-no-overtake", [], []
    first = Worker(engine2, "amy", "a1", started2, scheduler.API)
    second = Worker(engine2, "bob", "b1", started2, scheduler.API)
    await settle()
    third = asyncio.create_task(consume(engine2, "cid", prepared_after_retrieval(log2, "c"), scheduler.API))
    await settle()
    assert log2 == [] and not third.done(), "the burst's PREFETCH holds"
    first.finish.set()
    await asyncio.wait_for(third, 5)
    assert log2 == ["c"]
    await run_all([first, second], started2)
    await run_all([running, ready, late], started)
    await asyncio.wait_for(more, 5)


async def test_an_answer_that_ends_without_a_ticket_stops_counting_when_its_task_ends():
    engine = "t-no-ticket"
    gate = scheduler.gate(engine)

    async def prepared_only():
        await consume(engine, "x", prepared_after_retrieval([], "x"), scheduler.API)
        assert len(gate.arrived) == 1  # e.g. its prompt did not fit: no ticket

    await asyncio.create_task(prepared_only())
    await settle()
    assert gate.arrived == []


async def test_an_answer_let_in_on_arrival_is_never_refused_when_it_takes_its_ticket(monkeypatch):
    """Nothing accepted is dropped: the user's later request took its ticket first (its retrieval was
    quicker), filling the user's line; the earlier one, let in on arrival, still gets its ticket."""
    monkeypatch.setenv("LRC_MAX_WAITING_PER_USER", "1")
    engine, started = "t-accepted", []
    running = Worker(engine, "a", "run", started)
    items = []
    async for item in scheduler.counted(engine, "g", prepared_after_retrieval([], "g1"),
                                        until=lambda i: i == "prepared", lane=scheduler.API):
        items.append(item)  # let in: nothing of g's waits yet

    async def other_request() -> Worker:  # another task: not this one's arrival
        scheduler.turns.current.set(None)
        return Worker(engine, "g", "g2", started, lane=scheduler.API)

    later = await asyncio.create_task(other_request())  # g's other request overtook it
    with pytest.raises(scheduler.QueueFull):
        scheduler.gate(engine).enter("g", scheduler.API)  # a request never let in is refused
    ticket = scheduler.enter(engine, "g", scheduler.API)  # this task's arrival: let in before
    assert not ticket.left and scheduler.gate(engine).arrived == []
    ticket.release()
    await run_all([running, later], started)
