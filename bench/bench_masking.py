"""Throughput of compliance.masking on typical chat text, against a plain regex + Luhn baseline.

Run: .venv/bin/python bench/bench_masking.py [--mb 4] [--runs 7] [--seed 1] [--write]

Both are measured in the same run on the same text, so the ratio holds on any machine. Two
workloads: one call per message (what the chat pipeline does) and one call per whole transcript
(what the archive and exports do). Not a timed test: it prints a table for docs/benchmarks.md,
and with --write puts it there.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import docs_block, machine
from compliance import masking

_VOCABULARY = (
    "hi hello thanks thank you please could can would I my me we our you your the a an to of for in on "
    "at with about order account card payment refund delivery parcel arrived yet still not working "
    "help support agent question problem issue update address email password reset login tried again "
    "yesterday today tomorrow week month since when where why how what is was are were be been have "
    "has had do does did will just only also but and or so if then there here this that it they "
    "subscription invoice charge charged twice cancel change plan upgrade price discount code sorry "
    "great perfect okay sure one moment let check see looks like system shows status pending"
)
WORDS = _VOCABULARY.split()


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("2221", 16), ("37", 15), ("6011", 16)])
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        if masking.luhn_valid(body + check):
            number = body + check
            break
    style = rng.choice(["plain", "spaces", "dashes"])
    if style == "plain":
        return number
    sep = " " if style == "spaces" else "-"
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


def _number(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.30:
        return str(rng.randint(1, 500))
    if kind < 0.50:
        return f"#{rng.randint(10000, 99999999)}"
    if kind < 0.65:
        return f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/20{rng.randint(20, 26)}"
    if kind < 0.75:
        return f"${rng.randint(1, 999)}.{rng.randint(0, 99):02d}"
    if kind < 0.85:
        return f"({rng.randint(200, 999)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"
    if kind < 0.92:
        return f"+44 20 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"
    return str(rng.randint(10**11, 10**14))  # tracking numbers


def _long_number(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.4:
        return f"({rng.randint(200, 999)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"
    if kind < 0.7:
        return f"+44 20 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"
    if kind < 0.95:
        return str(rng.randint(10**11, 10**14))
    return _card(rng)


def digit_heavy_messages(messages: list[str], seed: int) -> list[str]:
    """The same messages, each with a phone, tracking or card number: none skips the scan."""
    rng = random.Random(seed)
    return [f"{m} {_long_number(rng)}" for m in messages]


def chat_messages(megabytes: float, seed: int) -> list[str]:
    """Mostly words; about one message in six has a number, one in two hundred a card."""
    rng = random.Random(seed)
    messages: list[str] = []
    size = 0
    while size < megabytes * 1_000_000:
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 25))]
        words[0] = words[0].capitalize()
        roll = rng.random()
        if roll < 0.005:
            words.insert(rng.randint(0, len(words)), _card(rng))
        elif roll < 0.17:
            words.insert(rng.randint(0, len(words)), _number(rng))
        text = " ".join(words) + rng.choice([".", "?", "!", "", " :)"])
        messages.append(text)
        size += len(text)
    return messages


# The approach the issue measures against: one regex pass for 13-19 digits with optional
# separators, then a Luhn check on each hit.
_BASELINE = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")


def baseline_mask(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        digits = re.sub(r"[ -]", "", m.group())
        return re.sub(r"\d", "X", m.group()) if masking.luhn_valid(digits) else m.group()

    return _BASELINE.sub(repl, text)


def measure(fns: dict[str, Callable[[], object]], nbytes: int, runs: int) -> dict[str, list[float]]:
    """MB/s of each function per run. Runs alternate between the functions, so a busy moment
    on the machine hits both alike, and time is this process's CPU time, not wall time."""
    for fn in fns.values():
        fn()  # warm up: compiled regexes, allocator
    rates: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            began = time.process_time()
            fn()
            rates[name].append(nbytes / (time.process_time() - began) / 1e6)
    return rates


def spread(rates: list[float]) -> str:
    return f"{statistics.median(rates):.1f} MB/s ({min(rates):.1f}–{max(rates):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=4.0, help="megabytes of chat text to generate")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--write", action="store_true", help="also write the table to docs/benchmarks.md"
    )
    args = parser.parse_args()

    messages = chat_messages(args.mb, args.seed)
    transcripts = ["\n".join(messages[i : i + 40]) for i in range(0, len(messages), 40)]
    workloads = {
        "typical chat, one call per message": messages,
        "typical chat, one call per transcript of 40 messages": transcripts,
        "every message with a long number (worst realistic case)": digit_heavy_messages(
            messages, args.seed
        ),
    }
    policy = masking.Policy()
    changed = sum(masking.mask(m, policy) != m for m in messages)
    assert changed, "the corpus should contain cards"

    rows = []
    for name, texts in workloads.items():
        nbytes = sum(len(t.encode()) for t in texts)
        rates = measure(
            {
                "masking": lambda texts=texts: [masking.mask(t, policy) for t in texts],
                "baseline": lambda texts=texts: [baseline_mask(t) for t in texts],
            },
            nbytes,
            args.runs,
        )
        ours, base = rates["masking"], rates["baseline"]
        ratio = statistics.median(ours) / statistics.median(base)
        rows.append(
            f"| {name} ({nbytes / 1e6:.1f} MB) | {spread(ours)} | {spread(base)} | {ratio:.1f}× |"
        )
    text = "\n".join(
        [
            (
                f"{machine.describe()}; one core used. Command: `.venv/bin/python bench/bench_masking.py {' '.join(sys.argv[1:])}`. "
                f"{len(messages)} messages averaging {sum(map(len, messages)) / len(messages):.0f} "
                f"characters, {changed} of them changed by masking; {args.runs} runs each, "
                "process CPU time, median (min–max)."
            ),
            "",
            "| Workload | `compliance.masking` | Baseline | Ratio |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    print(text)
    if args.write:
        docs_block.write_block("masking", text, heading="## Masking")
        print(f"written to {docs_block.DOCS}")


if __name__ == "__main__":
    main()
