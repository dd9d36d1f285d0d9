"""What a benchmark ran on, for the line above its figures in docs/benchmarks.md."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from pathlib import Path


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe() -> str:
    """'Run 2026-12-07 13:20 UTC on AMD EPYC, 2 cores, Python 3.11.7, load average 0.4'."""
    return (
        f"Run {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC on {cpu_name()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
