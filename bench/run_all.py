"""Every benchmark of docs/benchmarks.md in one command: `make bench` runs this script.

    .venv/bin/python bench/run_all.py                  # all of them (about 45 minutes); writes the doc
    .venv/bin/python bench/run_all.py --quick          # each small and short; prints, writes nothing
    .venv/bin/python bench/run_all.py --only masking,audit

In turn, each writing its figures into its own block of docs/benchmarks.md (bench/docs_block.py;
the prose around the blocks and the summary at the top are written by hand from them):

  masking    bench/bench_masking.py: MB/s against a regex + Luhn baseline of the same run
  audit      bench/bench_audit.py: append cost and export rate, SQLite and PostgreSQL
  reporting  bench/bench_reporting.py: a year's rollup of 100,000 conversations / 1,000,000
             messages and the supervisor dashboard on it (a scratch database, kept filled)
  load       bench/load.py: WebSocket load against the bare-relay baseline, idle sockets

PostgreSQL is reached at BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432); every
benchmark works in scratch databases of its own and never in the project's. A benchmark that
fails does not stop the others; the exit status says whether all of them ran.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")

# name -> (script, full-run arguments, quick arguments, environment)
BENCHMARKS: dict[str, tuple[str, list[str], list[str], dict[str, str]]] = {
    "masking": ("bench_masking.py", ["--write"], ["--mb", "0.3", "--runs", "2"], {}),
    "audit": (
        "bench_audit.py",
        ["--write"],
        ["--runs", "1", "--ops", "20", "--export-entries", "2000"],
        {"DATABASE_URL": f"{PG}/postgres"},
    ),
    "reporting": (
        "bench_reporting.py",
        ["--write", "--keep", "--database", "coachline_reporting_bench"],
        ["--runs", "1", "--conversations", "2000", "--database", "coachline_reporting_quick"],
        {"DATABASE_URL": f"{PG}/postgres"},
    ),
    "load": ("load.py", [], ["--quick"], {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small and short; writes nothing")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated names")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    failed = []
    for name in names:
        script, full, quick, env = BENCHMARKS[name]
        argv = [sys.executable, str(ROOT / "bench" / script), *(quick if args.quick else full)]
        print(f"\n=== {name}: {' '.join(argv[1:])}", flush=True)
        began = time.monotonic()
        done = subprocess.run(argv, cwd=ROOT, env={**os.environ, **env}, check=False)
        print(f"=== {name}: exit {done.returncode} after {time.monotonic() - began:.0f} s", flush=True)
        if done.returncode != 0:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)} (the others ran and wrote their figures)")
    if not args.quick:
        print("\nEvery block of docs/benchmarks.md is rewritten; update the summary at its top.")


if __name__ == "__main__":
    main()
