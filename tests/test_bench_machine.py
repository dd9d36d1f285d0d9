"""The benchmark's machine facts: the hypervisor's steal, over a step and in its worst window."""

from __future__ import annotations

import asyncio
import itertools

from bench import machine


def test_steal_share_over_the_span_and_in_its_worst_window():
    # (steal, total) jiffies: 2 of 100 stolen, then 30 of 100 in one burst, then none of 100.
    samples = [(0, 0), (2, 100), (32, 200), (32, 300)]
    whole, worst = machine.steal_shares(samples)
    assert whole == 32 / 300
    assert worst == 30 / 100


def test_no_window_no_steal():
    assert machine.steal_shares([]) == (0.0, 0.0)
    assert machine.steal_shares([(5, 100)]) == (0.0, 0.0)


def test_a_window_without_ticks_counts_as_none_stolen():
    assert machine.steal_shares([(7, 100), (7, 100)]) == (0.0, 0.0)


def test_watch_samples_this_machine_until_stopped():
    async def watch() -> tuple[machine.StealWatch, tuple[float, float]]:
        w = machine.StealWatch()
        await asyncio.sleep(3 * machine.STEAL_WINDOW_SECONDS)
        return w, await w.stop()

    w, (whole, worst) = asyncio.run(watch())
    assert len(w.samples) >= 4  # the first, two or more on the way, the last
    assert all(b[1] >= a[1] for a, b in itertools.pairwise(w.samples))
    assert 0.0 <= whole <= worst <= 1.0
