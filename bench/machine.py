"""What a benchmark ran on, for the line above its figures in docs/benchmarks.md."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
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


# --- steal: CPU time the hypervisor gave to other guests ----------------------------------------
#
# On a shared virtual machine a benchmark step can fail its p99 while every process of it is below
# a core: for a few hundred milliseconds the host ran someone else on our vCPUs. /proc/stat counts
# that time as "steal" (its eighth field). A step's share of it averages such a burst away, so the
# worst short window is kept too.

STEAL_WINDOW_SECONDS = 0.2


def cpu_fields() -> list[int]:
    """Jiffies of every core so far, from /proc/stat's first line: user, nice, system, idle,
    iowait, irq, softirq, steal."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return fields + [0] * (8 - len(fields))  # kernels without the steal field: none


def cpu_times() -> tuple[int, int]:
    """(steal, total) jiffies of every core so far."""
    fields = cpu_fields()
    return fields[7], sum(fields)


def steal_shares(samples: list[tuple[int, int]]) -> tuple[float, float]:
    """(over the whole span, in its worst window) share of CPU time stolen, 0..1, from
    consecutive `cpu_times()` samples."""
    if len(samples) < 2:
        return 0.0, 0.0
    (steal0, total0), (steal1, total1) = samples[0], samples[-1]
    whole = (steal1 - steal0) / max(1, total1 - total0)
    worst = max((b[0] - a[0]) / max(1, b[1] - a[1]) for a, b in itertools.pairwise(samples))
    return whole, worst


class StealWatch:
    """Samples `cpu_times()` every STEAL_WINDOW_SECONDS on the running loop until `stop()`."""

    def __init__(self) -> None:
        self.samples = [cpu_times()]
        self._task = asyncio.get_running_loop().create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(STEAL_WINDOW_SECONDS)
            self.samples.append(cpu_times())

    async def stop(self) -> tuple[float, float]:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.samples.append(cpu_times())
        return steal_shares(self.samples)
