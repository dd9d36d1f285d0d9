"""The benchmarks of docs/benchmarks.md still run: each in its quick form, nothing written.

Not a timed test (figures are not checked): the audit benchmark once stopped working when the
export began to check roles through the user's groups, and nothing noticed until the next
measurement. PostgreSQL is measured too where the run has one (real mode).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QUICK = {
    "masking": ["bench/bench_masking.py", "--mb", "0.05", "--runs", "1"],
    "audit": ["bench/bench_audit.py", "--runs", "1", "--ops", "5", "--export-entries", "500"],
    "reporting": [
        "bench/bench_reporting.py",
        "--runs",
        "1",
        "--conversations",
        "300",
        "--database",
        f"coachline_reporting_smoke_{os.getpid()}",
    ],
}


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )


def test_masking_benchmark_prints_its_table():
    done = run(QUICK["masking"])

    assert done.returncode == 0, done.stderr
    assert "| Workload | `compliance.masking` | Baseline | Ratio |" in done.stdout
    assert "typical chat, one call per message" in done.stdout


def test_audit_benchmark_appends_and_exports():
    before = (ROOT / "docs" / "benchmarks.md").read_text()

    done = run(QUICK["audit"])

    assert done.returncode == 0, done.stderr
    assert "#### SQLite" in done.stdout
    assert "| stream jsonl |" in done.stdout and "| astream jsonl |" in done.stdout
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        assert "#### PostgreSQL" in done.stdout
    assert (ROOT / "docs" / "benchmarks.md").read_text() == before  # without --write


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="the reporting benchmark measures PostgreSQL only; the real-mode run covers it",
)
def test_reporting_benchmark_recomputes_and_serves_the_dashboard():
    done = run(QUICK["reporting"])

    assert done.returncode == 0, done.stderr
    assert "Data: 300 conversations, 3,000 messages" in done.stdout
    assert "| Recompute a year (`recompute_days`) |" in done.stdout
    assert "| Dashboard page (HTTP view), a year, warm |" in done.stdout


def test_run_all_names_what_it_does_not_know():
    done = run(["bench/run_all.py", "--quick", "--only", "masking,nonsense"])

    assert done.returncode == 2
    assert "unknown benchmark nonsense; choose from masking, audit, reporting, load" in done.stderr
