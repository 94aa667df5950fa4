"""Where the whole machine's CPU goes while a command runs, by kind of process (Linux BSD process accounting).

    sudo python tests/proc_account.py [--out DIR] -- make test

``tests/cpu_account.py`` counts what each test's process tree used; it misses processes that leave the tree
(a PostgreSQL server, an engine worker outliving its server) and counts a process only once it is reaped. This
turns on the kernel's process accounting (``acct(2)``: needs root) for the length of the command, notes every
process's command line as it appears (polled every 0.5 s: a process shorter than that is named by its 16-letter
``comm`` only), and sums each process's user + system CPU by kind (chromium, the chat servers, the engine
workers, the test workers, `rag` commands, ...). ``--report DIR`` prints the table of an earlier run.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

_RECORD = struct.Struct("<BBHIIIIIIfHHHHHHHH16s")  # struct acct_v3 (linux/acct.h)
# what a process is, from its command line: first match wins
KINDS = [(r"exec\(eval\(sys\.stdin", "pytest worker"), (r"chainlit run|local-rag-chat", "chainlit server"),
         (r"engines\.onnx\.worker", "onnx engine worker"), (r"rag worker|rag\.jobs\.child|rag\.ingest\.worker",
                                                             "ingest child / worker"),
         (r"-m rag |/bin/rag ", "rag command"), (r"foundry", "Foundry Local"), (r"open-webui|open_webui", "Open WebUI"),
         (r"chrom", "chromium"), (r"playwright|node", "Playwright driver"), (r"^(\S*/)?(postgres|pg_ctl|initdb)\b", "PostgreSQL"),
         (r"tesseract|pdftoppm", "OCR"), (r"-m pip |-m venv |bin/pip ", "pip / venv"), (r"pytest", "pytest (other)"),
         (r"python", "python (other)")]


def _comp(c: int) -> float:
    """comp_t: 13-bit mantissa, 3-bit base-8 exponent, in clock ticks."""
    return ((c & 0x1FFF) << (3 * ((c >> 13) & 7))) / os.sysconf("SC_CLK_TCK")


def records(path: Path) -> list[dict]:
    data = path.read_bytes()
    out = []
    for off in range(0, len(data) - _RECORD.size + 1, _RECORD.size):
        f = _RECORD.unpack_from(data, off)
        out.append({"pid": f[6], "cpu": _comp(f[10]) + _comp(f[11]), "comm": f[18].split(b"\0")[0].decode(errors="replace")})
    return out


def kind(cmd: str | None, comm: str) -> str:
    for pattern, name in KINDS:
        if cmd and re.search(pattern, cmd):
            return name
    return f"({comm})" if not cmd else "other"


def _poll(out: Path, stop: threading.Event) -> None:
    seen: set[str] = set()
    with out.open("a") as f:
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit() and pid not in seen:
                    try:
                        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    except OSError:
                        continue
                    seen.add(pid)
                    f.write(json.dumps({"pid": int(pid), "cmd": cmd[:300]}) + "\n")
            f.flush()
            stop.wait(0.5)


def report(folder: Path) -> str:
    cmds = {}
    for line in (folder / "pids.jsonl").read_text().splitlines():
        r = json.loads(line)
        cmds[r["pid"]] = r["cmd"]
    by: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    recs = records(folder / "acct")
    for r in recs:
        k = kind(cmds.get(r["pid"]), r["comm"])
        by[k][0] += r["cpu"]
        by[k][1] += 1
    total = sum(r["cpu"] for r in recs)
    lines = [f"{len(recs)} processes, {total:.0f} CPU seconds", "| kind | CPU s | share | processes |", "|---|---:|---:|---:|"]
    lines += [f"| {k} | {c:.0f} | {c / total:.0%} | {n} |" for k, (c, n) in sorted(by.items(), key=lambda x: -x[1][0])
              if c >= 1]
    top = sorted(recs, key=lambda r: -r["cpu"])[:8]  # single processes: one test's model or page shows up here
    lines += ["", "| the busiest processes | CPU s | command |", "|---|---:|---|"]
    lines += [f"| {kind(cmds.get(r['pid']), r['comm'])} | {r['cpu']:.0f} | `{(cmds.get(r['pid']) or r['comm'])[:90].strip()}` |"
              for r in top]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/proc-account"), help="folder for the records")
    ap.add_argument("--report", type=Path, help="print the table of an earlier run's folder and stop")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="the command to run (after --)")
    args = ap.parse_args()
    if args.report:
        print(report(args.report))
        return 0
    command = [c for c in args.command if c != "--"] or ["make", "test"]
    args.out.mkdir(parents=True, exist_ok=True)
    acct = args.out / "acct"
    acct.write_bytes(b"")
    (args.out / "pids.jsonl").write_text("")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.acct(str(acct).encode()) != 0:
        print(f"acct(2) failed: {os.strerror(ctypes.get_errno())} (needs root and a kernel with BSD process "
              "accounting)", file=sys.stderr)
        return 2
    stop = threading.Event()
    poller = threading.Thread(target=_poll, args=(args.out / "pids.jsonl", stop), daemon=True)
    poller.start()
    t0 = time.monotonic()
    try:
        code = subprocess.call(command)
    finally:
        libc.acct(None)
        stop.set()
        poller.join(5)
    print(f"{' '.join(command)}: exit {code} after {time.monotonic() - t0:.0f} s")
    print(report(args.out))
    return code


if __name__ == "__main__":
    sys.exit(main())
