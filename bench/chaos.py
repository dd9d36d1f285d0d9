"""The long chaos run: 200 conversations (400 sockets) through five Redis restarts, a killed server
process and PostgreSQL refusing connections for five seconds.

    DATABASE_URL=postgres://… REDIS_URL=redis://… SECRET_KEY=… .venv/bin/python bench/chaos.py
    .venv/bin/python bench/chaos.py --conversations 50 --redis-restarts 2   # a shorter one
    .venv/bin/python bench/chaos.py --busy 3   # the same on a busy machine: 3 processes burning CPU

It runs tests/realmode/test_chaos.py (the quick form of which `make test` runs) at this size, so
the long and the quick form check exactly the same things (see tests/chaos.py): nothing lost,
nothing stored twice, every sender's order kept, every client's copy equal to the stored
transcript, every client back and caught up within 10 s of each fault's end, /readyz answering
503 with the failing part (never hanging) and a WARNING in the server log. The machine's own
PostgreSQL and Redis are never stopped: the run starts its own redis-server and a TCP proxy in
front of PostgreSQL, and uses pytest-django's scratch test database. Prints the figures as a
Markdown table for docs/benchmarks.md ("Chaos"); the exit status is pytest's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--redis-restarts", type=int, default=5)
    parser.add_argument("--busy", type=int, default=0,
                        help="processes that burn CPU throughout, as other work on a shared machine would")
    args = parser.parse_args()
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        print("Real mode only: set DATABASE_URL and REDIS_URL (see README, 'Real mode').", file=sys.stderr)
        return 2
    faults = ["redis"] * args.redis_restarts + ["daphne", "postgres"]
    with tempfile.TemporaryDirectory() as scratch:
        result = Path(scratch) / "chaos.json"
        env = {
            **os.environ,
            "COACHLINE_CHAOS_CONVERSATIONS": str(args.conversations),
            "COACHLINE_CHAOS_FAULTS": ",".join(faults),
            "COACHLINE_CHAOS_RESULT": str(result),
        }
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:logging", "--create-db",
                   "tests/realmode/test_chaos.py"]
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
        try:
            status = subprocess.call(command, cwd=ROOT, env=env)
        finally:
            for burner in burners:
                burner.kill()
                burner.wait()
            load = os.getloadavg()[0]
        if not result.exists():
            print("The run ended before it measured anything; see the pytest output above.", file=sys.stderr)
            return status or 1
        print(table(json.loads(result.read_text()), busy=args.busy, load=load))
    return status


def table(summary: dict, *, busy: int = 0, load: float = 0.0) -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    lines = [
        (f"Measured {dt.date.today().isoformat()} on {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}; "
         f"{summary['conversations']} conversations ({summary['sockets']} sockets), two daphne processes, "
         f"{summary['messages']} messages in {summary['seconds']} s"
         + (f"; {busy} other processes burning CPU throughout, load average {load:.1f} at the end." if busy else
            f"; load average {load:.1f} at the end.")),
        "",
        "| Fault | Lasted s | Clients back and caught up: median s | max s | /readyz during the fault | Failing parts named | Slowest /readyz ms |",
        "|---|---:|---:|---:|---|---|---:|",
    ]
    for fault in summary["faults"]:
        ready = fault["readyz"]
        answers = ", ".join(f"{k}×{v}" for k, v in sorted(ready["answers"].items()))
        lines.append(
            f"| {fault['kind']} | {fault['fault_seconds']} | {fault['recovery_p50']} | {fault['recovery_max']} | "
            f"{answers} | {', '.join(ready['failing']) or '—'} | {ready['slowest_ms']} |")
    lines += [
        "",
        "Where the recovery went (seconds after each fault's end; a client is caught up once both hold):",
        "",
        "| Fault | /readyz 200 again, per server | Holding every stored message: median | max | Own messages acknowledged: median | max |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for fault in summary["faults"]:
        again = ", ".join("—" if t is None else f"{t}" for t in fault["ready_again"])
        lines.append(f"| {fault['kind']} | {again} | {fault['held_p50']} | {fault['held_max']} | "
                     f"{fault['acked_p50']} | {fault['acked_max']} |")
    lines += ["", "Slowest clients per fault:", ""]
    lines += [f"- {fault['kind']}: " + "; ".join(fault.get("slowest", [])) for fault in summary["faults"]]
    lines += [
        "",
        f"Reconnections: {summary['reconnections']} (close codes: "
        + ", ".join(f"{k}×{v}" for k, v in sorted(summary["close_codes"].items())) + "); "
        f"`internal` errors answered and retried: {summary['internal_errors']}; "
        f"repeated frames dropped by seq: {summary['repeats_deduplicated']}; "
        f"live frames out of seq order: {summary['out_of_order_live']}.",
        f"Problems (lost, duplicated, out of order, late, silent): {len(summary['problems'])}"
        + ("" if not summary["problems"] else ": " + "; ".join(summary["problems"][:5])),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
