"""Where the suite's CPU goes: with ``LRC_TEST_CPU=<folder>``, each test's CPU seconds (setup, call and
teardown, of the pytest process and every process it started, live or reaped) go to
``<folder>/<worker>.jsonl``; ``python tests/cpu_account.py <folder>`` sums them by file and shows the top.

On 2 cores the suite's test time cannot go below its CPU seconds / 2, so this is what a faster suite
has to cut (wall-clock durations under xdist mostly measure the other workers).
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest


def _tree_cpu() -> float:
    import psutil

    me = psutil.Process()
    total = 0.0
    t = me.cpu_times()
    total += t.user + t.system + t.children_user + t.children_system
    for child in me.children(recursive=True):
        try:
            c = child.cpu_times()
            total += c.user + c.system + c.children_user + c.children_system
        except psutil.Error:
            pass
    return total


class CpuAccount:
    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.out = (folder / f"{worker}.jsonl").open("a")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        before, t0 = _tree_cpu(), time.time()
        yield
        self.out.write(json.dumps({"test": item.nodeid, "cpu_s": round(_tree_cpu() - before, 2),
                                   "start": round(t0, 2), "wall_s": round(time.time() - t0, 2)}) + "\n")
        self.out.flush()


def register(config) -> None:
    folder = os.environ.get("LRC_TEST_CPU")
    if folder:
        config.pluginmanager.register(CpuAccount(Path(folder)), "lrc-cpu-account")


def report(folder: Path, top: int = 30) -> None:
    by_file: dict[str, float] = defaultdict(float)
    by_test: list[tuple[float, str]] = []
    for f in folder.glob("*.jsonl"):
        for line in f.read_text().splitlines():
            row = json.loads(line)
            by_file[row["test"].split("::")[0]] += row["cpu_s"]
            by_test.append((row["cpu_s"], row["test"]))
    total = sum(by_file.values())
    print(f"total CPU {total:.0f} s over {len(by_test)} tests (floor on 2 cores: {total / 2 / 60:.1f} min)")
    for name, cpu in sorted(by_file.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{cpu:8.1f}  {name}")
    print("-- tests")
    for cpu, name in sorted(by_test, reverse=True)[:top]:
        print(f"{cpu:8.1f}  {name}")
    timeline(folder)


def timeline(folder: Path) -> None:
    """When each worker was busy: its first start, its last end, and the tests running in the last minutes
    (the suite's tail, when fewer workers than cores have work)."""
    rows = [dict(json.loads(line), worker=f.stem) for f in folder.glob("*.jsonl") for line in f.read_text().splitlines()]
    rows = [r for r in rows if "start" in r]
    if not rows:
        return
    t0 = min(r["start"] for r in rows)
    end = max(r["start"] + r["wall_s"] for r in rows)
    print(f"-- workers (seconds from the first test; the last ended at {end - t0:.0f} s)")
    for w in sorted({r["worker"] for r in rows}):
        mine = [r for r in rows if r["worker"] == w]
        last = max(mine, key=lambda r: r["start"] + r["wall_s"])
        print(f"{w}: {len(mine)} tests, ended at {last['start'] + last['wall_s'] - t0:.0f} s with {last['test']}")
    print("-- tests still running in the last 240 s")
    for r in sorted(rows, key=lambda r: r["start"]):
        if r["start"] + r["wall_s"] > end - 240 and r["wall_s"] > 5:
            print(f"{r['start'] - t0:6.0f} +{r['wall_s']:5.0f} s  {r['worker']}  {r['test']}")


if __name__ == "__main__":
    report(Path(sys.argv[1]))
