"""What the audit log costs: one record() in a transaction, and exporting a large log.

Run: .venv/bin/python bench/bench_audit.py [--runs 7] [--ops 300] [--export-entries 200000] [--write]
     With DATABASE_URL set, PostgreSQL is measured too (in a scratch database it creates and
     drops); SQLite always (in a scratch directory). The log is append-only, so nothing here
     may write into a real database.

1. Append cost, as differences within one run: the same transaction with and without one
   `record()` call, alternating which goes first in each run.
   - "chat message": `chat.pipeline.run()` storing a visitor message (lock the conversation,
     sequence number, insert, on-commit broadcast), with an after-persist hook that records.
   - "small update": a transaction that updates one row.
2. Export: `audit_export.stream()` (WSGI) and `astream()` (ASGI) over N entries, CSV and JSON
   Lines: entries/s, and peak memory (tracemalloc; and VmHWM on Linux) for N/10 and N entries
   to show the stream's memory does not grow with N, against buffering the whole export.
Figures are printed as Markdown for docs/benchmarks.md; --write puts them there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import docs_block, machine

# --- the worker: runs inside one scratch database -----------------------------------------------


def worker(args: argparse.Namespace) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from chat import pipeline
    from chat.models import Conversation, Department, Message, Visitor, hash_token
    from compliance import audit, audit_export, roles
    from compliance.models import AuditEntry

    call_command("migrate", verbosity=0)
    department = Department.objects.create(name="Bench", slug="bench")
    now = timezone.now()
    visitor = Visitor.objects.create(
        token_hash=hash_token("bench-token-long-enough-0123456789"), last_seen_at=now
    )
    conversation = Conversation.objects.create(
        visitor=visitor, department=department, created_at=now, queued_at=now, queue_order_at=now
    )

    auditing = {"on": False}
    inside: list[float] = []  # seconds spent in record() itself, commit not included

    def timed_record(**kwargs) -> None:
        began = time.perf_counter()
        audit.record(**kwargs)
        inside.append(time.perf_counter() - began)

    def audit_hook(message: Message) -> None:
        if auditing["on"]:
            timed_record(
                action="chat.message",
                target=f"conversation:{message.conversation_id}",
                details={"message": message.pk, "seq": message.seq},
            )

    pipeline.register_after_persist(audit_hook)

    def chat_message(i: int) -> None:
        pipeline.run(
            pipeline.Inbound(
                conversation_id=conversation.pk, role=Message.Role.VISITOR, body=f"hello {i}"
            )
        )

    def small_update(i: int) -> None:
        with transaction.atomic():
            Visitor.objects.filter(pk=visitor.pk).update(last_seen_at=timezone.now())
            if auditing["on"]:
                timed_record(
                    action="bench.update", target=f"visitor:{visitor.pk}", details={"i": i}
                )

    def one_run(fn) -> tuple[float, float, float]:
        """Median µs per transaction without and with record(), and inside record().

        The two kinds alternate transaction by transaction, so load from elsewhere on the
        machine falls on both alike; medians keep a stray slow commit from dominating.
        """
        times: dict[bool, list[float]] = {False: [], True: []}
        inside.clear()
        for i in range(args.ops):
            for on in (False, True) if i % 2 == 0 else (True, False):
                auditing["on"] = on
                began = time.perf_counter()
                fn(i)
                times[on].append(time.perf_counter() - began)
        auditing["on"] = False
        return tuple(statistics.median(v) * 1e6 for v in (times[False], times[True], inside))

    append = {}
    for name, fn in (("chat message", chat_message), ("small update", small_update)):
        one_run(fn)  # warm up
        runs = [one_run(fn) for _ in range(args.runs)]
        append[name] = {
            "baseline": [r[0] for r in runs],
            "audited": [r[1] for r in runs],
            "inside": [r[2] for r in runs],
        }

    # --- export -----------------------------------------------------------------------------
    # The export checks who asks by role: a real compliance officer, made before the chain so
    # anything recorded about it is part of the chain the export walks.
    officer = get_user_model().objects.create_user("bench-officer")
    officer.groups.add(Group.objects.get(name=roles.COMPLIANCE_OFFICER))

    # The log to export is built with bulk inserts of a valid chain (record() one by one is what
    # the first part measures; here it would only make the run long).
    start = time.perf_counter()
    head = (
        AuditEntry.objects.order_by("-id").values_list("hash", flat=True).first()
        or audit.GENESIS_HASH
    )
    written = AuditEntry.objects.count()
    while written < args.export_entries:
        batch = []
        for n in range(written, min(written + 5000, args.export_entries)):
            entry = AuditEntry(
                at=timezone.now(),
                actor_username="alice",
                role="Agent",
                source_ip="192.0.2.10",
                action="transcript.view",
                target=f"conversation:{n}",
                outcome="success",
                details={"reason": "bench", "n": n},
                prev_hash=head,
            )
            entry.hash = head = audit.entry_hash(
                {f: getattr(entry, f) for f in audit.HASHED_FIELDS}
            )
            batch.append(entry)
        AuditEntry.objects.bulk_create(batch)
        written += len(batch)
    seed_seconds = time.perf_counter() - start
    total = AuditEntry.objects.count()
    start = time.perf_counter()
    chain = audit.verify_chain()
    verify_seconds = time.perf_counter() - start
    assert chain.ok and chain.count == total, chain.broken

    def rows(limit: int | None = None):
        ids = AuditEntry.objects.order_by("id").values_list("id", flat=True)
        before = ids[limit] if limit and limit < total else None
        return audit_export.entries_for_export(
            user=officer, filters=audit_export.ExportFilters(format="csv"), before_id=before
        )

    def drain_sync(fmt: str, limit: int | None = None) -> int:
        size = 0
        for chunk in audit_export.stream(rows(limit), fmt=fmt):
            size += len(chunk)
        return size

    def drain_async(fmt: str, limit: int | None = None) -> int:
        selected = rows(limit)

        async def go() -> int:
            size = 0
            async for chunk in audit_export.astream(selected, fmt=fmt):
                size += len(chunk)
            return size

        return asyncio.run(go())

    def buffered(fmt: str, limit: int | None = None) -> int:
        # What Django does with a sync iterator under ASGI: everything in one list first.
        return len(b"".join(list(audit_export.stream(rows(limit), fmt=fmt))))

    export = {
        "entries": total,
        "seed_seconds": seed_seconds,
        "verify_seconds": verify_seconds,
        "rate": {},
        "memory": {},
    }
    for label, fn, fmt in (
        ("stream csv", drain_sync, "csv"),
        ("stream jsonl", drain_sync, "jsonl"),
        ("astream jsonl", drain_async, "jsonl"),
    ):
        times, size = [], 0
        for _ in range(max(3, args.runs // 2)):
            start = time.perf_counter()
            size = fn(fmt)
            times.append(time.perf_counter() - start)
        export["rate"][label] = {"seconds": times, "bytes": size}
    small = max(total // 10, 1)
    for label, fn, fmt in (
        ("stream jsonl", drain_sync, "jsonl"),
        ("astream jsonl", drain_async, "jsonl"),
        ("buffered jsonl", buffered, "jsonl"),
    ):
        export["memory"][label] = {
            str(n): _peak_memory(lambda fn=fn, fmt=fmt, n=n: fn(fmt, n)) for n in (small, total)
        }
    connection.close()
    return {"vendor": connection.vendor, "append": append, "export": export}


def _peak_memory(fn) -> dict:
    """Peak Python allocations (tracemalloc) and the rise of the peak RSS (VmHWM) during fn."""
    hwm_reset = _reset_peak_rss()
    rss_before = _status_kb("VmRSS")
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rise = (_status_kb("VmHWM") - rss_before) if hwm_reset else None
    return {"tracemalloc_peak_kb": peak / 1024, "rss_peak_rise_kb": rise}


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM to the current RSS
        return True
    except OSError:
        return False


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


# --- the orchestrator: one worker per database ------------------------------------------------


def run_worker(env: dict[str, str], args: argparse.Namespace) -> dict:
    argv = [
        sys.executable,
        __file__,
        "--worker",
        "--runs",
        str(args.runs),
        "--ops",
        str(args.ops),
        "--export-entries",
        str(args.export_entries),
    ]
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"worker failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def scratch_postgres(url: str):
    import psycopg

    parts = urlsplit(url)
    name = f"coachline_bench_audit_{os.getpid()}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit(parts._replace(path="/" + name)), drop


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"


def report(result: dict, args: argparse.Namespace) -> str:
    vendor = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[result["vendor"]]
    lines = [
        f"#### {vendor}",
        "",
        (
            f"Append, µs per transaction: median of {args.ops} transactions of each kind, "
            f"alternating; median (min–max) over {args.runs} runs:"
        ),
        "",
        "| transaction | without record() | with record() | difference | inside record() |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, data in result["append"].items():
        base, audited, inside = data["baseline"], data["audited"], data["inside"]
        diffs = [a - b for a, b in zip(audited, base, strict=True)]
        lines.append(
            f"| {name} | {spread(base)} | {spread(audited)} | {spread(diffs)} | {spread(inside)} |"
        )
    export = result["export"]
    n = export["entries"]
    lines += [
        "",
        (
            f"Export of {n:,} entries (`verify_audit_log` walks them at "
            f"{n / export['verify_seconds']:,.0f} entries/s):"
        ),
        "",
        "| path | entries/s, median (min–max) | MB/s | size |",
        "|---|---:|---:|---:|",
    ]
    for label, data in export["rate"].items():
        rates = [n / s for s in data["seconds"]]
        mb = data["bytes"] / 1e6
        lines.append(
            f"| {label} | {statistics.median(rates):,.0f} ({min(rates):,.0f}–{max(rates):,.0f}) "
            f"| {mb / statistics.median(data['seconds']):.1f} | {mb:.0f} MB |"
        )
    sizes = list(next(iter(export["memory"].values())))
    lines += [
        "",
        "Peak memory while exporting (tracemalloc peak / rise of peak RSS):",
        "",
        "| path | " + " | ".join(f"{int(s):,} entries" for s in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for label, by_size in export["memory"].items():
        cells = []
        for size in sizes:
            m = by_size[size]
            rss = (
                f"{m['rss_peak_rise_kb'] / 1024:.1f} MB"
                if m["rss_peak_rise_kb"] is not None
                else "n/a"
            )
            cells.append(f"{m['tracemalloc_peak_kb'] / 1024:.1f} MB / {rss}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--export-entries", type=int, default=200_000)
    parser.add_argument(
        "--write", action="store_true", help="also write the tables to docs/benchmarks.md"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    base_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    base_env["CHAT_INPROCESS_SWEEPER"] = "false"
    parts = [
        (
            f"{machine.describe()} at the start. Command: `.venv/bin/python "
            f"bench/bench_audit.py {' '.join(sys.argv[1:])}`"
            + (" with `DATABASE_URL` set." if os.environ.get("DATABASE_URL") else ".")
        )
    ]
    print(parts[0], flush=True)
    with tempfile.TemporaryDirectory() as data_dir:
        parts.append(report(run_worker({**base_env, "COACHLINE_DATA_DIR": data_dir}, args), args))
        print("\n" + parts[-1], flush=True)
    url = os.environ.get("DATABASE_URL")
    if url:
        scratch_url, drop = scratch_postgres(url)
        try:
            parts.append(report(run_worker({**base_env, "DATABASE_URL": scratch_url}, args), args))
            print("\n" + parts[-1], flush=True)
        finally:
            drop()
    if args.write:
        docs_block.write_block("audit", "\n\n".join(parts), heading="## Audit log")
        print(f"written to {docs_block.DOCS}")


if __name__ == "__main__":
    main()
