"""What reporting costs on PostgreSQL: recomputing a year, and the dashboard's reads.

Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/<yours> .venv/bin/python bench/bench_reporting.py
     [--runs 5] [--conversations 100000] [--messages 10] [--database NAME] [--keep] [--write]

It uses a scratch database (`--database`, default `<yours>_bench_reporting`, created when missing;
dropped at the end unless `--keep`, and then reused as filled by the next run with the same
sizes), migrates it and fills it with SQL (generate_series): N conversations spread over 365 days in two departments and
ten agents, M messages each (N·M messages; 10 % carry a canned-response marker), one accepted
assignment per answered chat (5 % transferred to a second agent), surveys on 40 %, invitations,
and a 9-hour online presence interval per agent per day.

1. Recompute: `recompute_days` over the whole year (all N conversations), --runs times.
2. Dashboard: the whole page for the year over HTTP as Django's test client gets it (an
   OTP-verified superuser session, every middleware, the view and the admin template), warm (one
   call to warm the caches, then --runs × 20 calls); the selectors alone (headline figures for
   the year and the previous year, daily series, hourly volume, agent table), warm; and the page
   with the figures cache cleared before every call (--runs × 4 calls). Median and p95.
Figures are printed as Markdown for docs/benchmarks.md; --write puts them there.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import docs_block, machine

FILL_SQL = """
INSERT INTO chat_department (name, slug, routing, accept_timeout_seconds, created_at)
VALUES ('Support', 'support', 'auto', 30, now()), ('Billing', 'billing', 'auto', 30, now());

INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
SELECT '!', i = 0, 'u' || i, '', '', '', true, true, now() FROM generate_series(0, 10) i;

INSERT INTO chat_agentprofile (user_id, display_name, avatar, max_chats, presence)
SELECT id, 'Agent ' || username, '', 3, 'offline' FROM auth_user WHERE username <> 'u0';

INSERT INTO chat_agentprofile_departments (agentprofile_id, department_id)
SELECT a.id, d.id FROM chat_agentprofile a CROSS JOIN chat_department d;

INSERT INTO chat_visitor (token_hash, name, email, page_url, referrer, user_agent, created_at)
SELECT md5(i::text) || md5((i + 1)::text), '', '', '', '', '', now() FROM generate_series(1, %(n)s) i;

CREATE TEMP TABLE agents AS SELECT row_number() OVER (ORDER BY id) - 1 AS k, id FROM chat_agentprofile;
CREATE TEMP TABLE depts AS SELECT row_number() OVER (ORDER BY id) - 1 AS k, id FROM chat_department;

INSERT INTO chat_conversation (visitor_id, department_id, agent_id, status, subject, created_at,
    queued_at, assigned_at, first_agent_reply_at, ended_at, ended_by, is_training, last_seq, last_public_seq, disposition)
SELECT v.id, d.id,
       CASE WHEN v.id %% 10 IN (0, 1) THEN NULL ELSE a.id END,
       CASE WHEN v.id %% 10 = 0 THEN 'missed' WHEN v.id %% 10 = 1 THEN 'abandoned' ELSE 'ended' END,
       '', t, t,
       CASE WHEN v.id %% 10 IN (0, 1) THEN NULL ELSE t + ((v.id %% 170) + 5) * interval '1 second' END,
       CASE WHEN v.id %% 10 IN (0, 1) THEN NULL ELSE t + ((v.id %% 170) + 40) * interval '1 second' END,
       t + ((v.id %% 1300) + 300) * interval '1 second',
       'visitor', v.id %% 50 = 0, %(m)s, %(m)s, ''
  FROM (SELECT id, timestamptz '2025-01-01 08:00Z' + (id %% 365) * interval '1 day'
                 + (id * 7 %% 32400) * interval '1 second' AS t FROM chat_visitor) v
  JOIN depts d ON d.k = v.id %% 2
  JOIN agents a ON a.k = v.id %% 10;

INSERT INTO chat_assignment (conversation_id, agent_id, offered_at, accepted_at, first_reply_at, ended_at, end_reason, transfer_note)
SELECT id, agent_id, assigned_at, assigned_at, first_agent_reply_at, ended_at, 'ended', ''
  FROM chat_conversation WHERE agent_id IS NOT NULL;

UPDATE chat_assignment SET end_reason = 'transferred', ended_at = accepted_at + interval '60 seconds'
 WHERE conversation_id %% 20 = 3;
INSERT INTO chat_assignment (conversation_id, agent_id, offered_at, accepted_at, ended_at, end_reason, transfer_note)
SELECT c.id, (SELECT id FROM agents WHERE k = (c.id + 1) %% 10), a.ended_at, a.ended_at, c.ended_at, 'ended', ''
  FROM chat_conversation c JOIN chat_assignment a ON a.conversation_id = c.id AND a.end_reason = 'transferred';

INSERT INTO chat_message (conversation_id, seq, public_seq, role, visibility, body, meta, created_at)
SELECT c.id, s, s, CASE WHEN s %% 2 = 0 THEN 'agent' ELSE 'visitor' END, 'public', 'text',
       CASE WHEN s = 2 AND c.id %% 4 = 0 THEN '{"canned": {"id": 1, "shortcut": "hi", "edited": false}}'::jsonb
            ELSE '{}'::jsonb END,
       c.created_at + s * interval '10 seconds'
  FROM chat_conversation c CROSS JOIN generate_series(1, %(m)s) s;

INSERT INTO chat_surveyresponse (conversation_id, rating, comment, answers, submitted_at)
SELECT id, 1 + id %% 5, '', '{}'::jsonb, ended_at + interval '1 minute'
  FROM chat_conversation WHERE status = 'ended' AND id %% 5 IN (1, 3);

INSERT INTO chat_proactiveinvitation (visitor_id, department_id, page_url, status, sent_at, conversation_id)
SELECT visitor_id, department_id, '', 'accepted', created_at - interval '30 seconds', id
  FROM chat_conversation WHERE id %% 10 = 7;

INSERT INTO chat_presenceinterval (agent_id, status, started_at, ended_at)
SELECT a.id, 'online', timestamptz '2025-01-01 07:30Z' + d * interval '1 day',
       timestamptz '2025-01-01 17:30Z' + d * interval '1 day'
  FROM agents a CROSS JOIN generate_series(0, 364) d;
ANALYZE;
"""


def _explain_recompute(services, *, start, end, now) -> None:
    from django.db import connection, transaction

    statements = []

    def capture(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with transaction.atomic():
        with connection.execute_wrapper(capture):
            services.recompute_days(start=start, end=end, now=now)
        transaction.set_rollback(True)
    # Replay them in order in one transaction (EXPLAIN ANALYZE executes each), then roll back.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL work_mem = '64MB'")
        for sql, params in statements:
            if not sql.lstrip().upper().startswith(("INSERT", "DELETE", "WITH", "UPDATE")):
                cursor.execute(sql, params)
                continue
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            plan = [row[0] for row in cursor.fetchall()]
            print("\n---", sql[:120].replace("\n", " "))
            print("\n".join(plan[:60]))
        transaction.set_rollback(True)


def _scratch_url(url: str, name: str | None) -> tuple[str, str, str]:
    parts = urlsplit(url)
    name = name or parts.path.lstrip("/") + "_bench_reporting"
    admin = urlunsplit(parts._replace(path="/postgres"))
    return admin, urlunsplit(parts._replace(path="/" + name)), name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--database", help="scratch database name (never a real one: it is filled)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the filled database for the next run"
    )
    parser.add_argument(
        "--write", action="store_true", help="also write the table to docs/benchmarks.md"
    )
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        sys.exit(
            "Set DATABASE_URL to a PostgreSQL database (a scratch copy is created next to it)."
        )
    import psycopg

    admin_url, scratch_url, name = _scratch_url(base, args.database)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    sizes = f"{args.conversations}x{args.messages}"
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        filled = conn.execute("SELECT to_regclass('bench_filled') IS NOT NULL").fetchone()[
            0
        ] and conn.execute("SELECT sizes FROM bench_filled").fetchone() == (sizes,)
        if not filled:
            # Anything else in it was left by an earlier, different run: start from nothing.
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
    os.environ["DATABASE_URL"] = scratch_url
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
    os.environ.setdefault("SECRET_KEY", "bench")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    try:
        import datetime as dt

        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connection

        from reporting import selectors, services

        call_command("migrate", verbosity=0)
        t0 = time.perf_counter()
        if not filled:
            with connection.cursor() as cursor:
                cursor.execute(FILL_SQL, {"n": args.conversations, "m": args.messages})
                cursor.execute("CREATE TABLE bench_filled (sizes text)")
                cursor.execute("INSERT INTO bench_filled VALUES (%s)", [sizes])
        fill = time.perf_counter() - t0
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT (SELECT count(*) FROM chat_conversation), (SELECT count(*) FROM chat_message)"
            )
            n_conv, n_msg = cursor.fetchone()

        start, end = dt.date(2025, 1, 1), dt.date(2025, 12, 31)
        now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
        if os.environ.get("BENCH_EXPLAIN"):
            from django.test.utils import CaptureQueriesContext

            # Every statement of a year's recompute, slowest first, with its plan (EXPLAIN
            # ANALYZE runs it: inside a transaction that is rolled back).
            with CaptureQueriesContext(connection) as ctx:
                services.recompute_days(start=start, end=end, now=now)
            for q in sorted(ctx.captured_queries, key=lambda q: -float(q["time"]))[:8]:
                print("recompute:", q["time"], q["sql"][:160])
            _explain_recompute(services, start=start, end=end, now=now)
        # CPU seconds spent on it, by this process and its PostgreSQL backend: unlike the wall
        # time, hardly changed by other processes competing for the cores (a shared machine).
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (backend,) = cursor.fetchone()
        ticks = os.sysconf("SC_CLK_TCK")

        def cpu_now() -> float:
            with open(f"/proc/{backend}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks + time.process_time()

        recompute, recompute_cpu = [], []
        for _ in range(args.runs):
            t0, c0 = time.perf_counter(), cpu_now()
            services.recompute_days(start=start, end=end, now=now)
            recompute.append(time.perf_counter() - t0)
            recompute_cpu.append(cpu_now() - c0)

        # Each recompute above replaced a year of rows; autovacuum clears the dead ones within a
        # minute or so in production, but would still be at it here: do it now, as it would.
        with connection.cursor() as cursor:
            for table in ("conversationfact", "dailyrollup", "hourlyvolume", "agentoccupancy"):
                cursor.execute(f"VACUUM ANALYZE reporting_{table}")
        boss = get_user_model().objects.get(username="u0")
        previous = (start - dt.timedelta(days=365), start - dt.timedelta(days=1))

        def selectors_page() -> None:
            with selectors.tuned():
                scope = selectors.resolve_scope(user=boss, department_ids=None, agent_id=None)
                selectors.summary(scope=scope, start=start, end=end)
                selectors.summary(scope=scope, start=previous[0], end=previous[1])
                selectors.daily_series(scope=scope, start=start, end=end)
                selectors.hourly_volume(scope=scope, start=start, end=end)
                selectors.agent_table(scope=scope, start=start, end=end)

        # The whole page as a browser gets it: an OTP-verified superuser session through every
        # middleware, the view and the admin template (Django's test client, in process).
        from django.conf import settings
        from django.core.cache import cache

        from tests.auth import staff_client

        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
        client = staff_client(boss)
        url = "/admin/reporting/reportingsettings/dashboard/"
        query = {"start": start.isoformat(), "end": end.isoformat()}

        def view_page() -> None:
            response = client.get(url, query)
            assert response.status_code == 200, response.status_code

        cpu_per_call: dict[str, float] = {}

        def timed(fn, n: int, *, cold: bool = False, label: str = "") -> list[float]:
            out = []
            cpu = 0.0
            for _ in range(n):
                if cold:
                    cache.clear()
                t0, c0 = time.perf_counter(), cpu_now()
                fn()
                out.append((time.perf_counter() - t0) * 1000)
                cpu += cpu_now() - c0
            cpu_per_call[label] = cpu / n * 1000
            return sorted(out)

        view_page()
        if os.environ.get("BENCH_EXPLAIN"):
            from django.test.utils import CaptureQueriesContext

            cache.clear()
            with CaptureQueriesContext(connection) as ctx:
                t0 = time.perf_counter()
                view_page()
                print(
                    f"page (cold): {len(ctx.captured_queries)} queries, {time.perf_counter() - t0:.3f} s"
                )
            for q in sorted(ctx.captured_queries, key=lambda q: -float(q["time"]))[:6]:
                print(q["time"], q["sql"][:300])
        n = args.runs * 20
        labels = (
            "Dashboard page (HTTP view), a year, warm",
            "Dashboard selectors, a year, warm",
            "Dashboard page (HTTP view), a year, cache cleared each time",
        )
        measures = {
            labels[0]: timed(view_page, n, label=labels[0]),
            labels[1]: timed(selectors_page, n, label=labels[1]),
            labels[2]: timed(view_page, args.runs * 4, cold=True, label=labels[2]),
        }

        def p95(values: list[float]) -> float:
            return values[round(0.95 * (len(values) - 1))]

        out = [
            (
                f"{machine.describe()} at the end; PostgreSQL {connection.pg_version // 10000}. "
                f"Command: `DATABASE_URL=postgres://… .venv/bin/python bench/bench_reporting.py "
                f"{' '.join(sys.argv[1:])}`."
            ),
            f"Data: {n_conv:,} conversations, {n_msg:,} messages over 365 days"
            + (f" (filled in {fill:.1f} s)." if not filled else " (reused from an earlier run)."),
            "",
            "| Measure | Runs | Median | p95 | Min | Max | CPU (Python + PostgreSQL backend) |",
            "|---|---|---|---|---|---|---|",
            (
                f"| Recompute a year (`recompute_days`) | {len(recompute)} | "
                f"{statistics.median(recompute):.2f} s | – | {min(recompute):.2f} s | "
                f"{max(recompute):.2f} s | {statistics.median(recompute_cpu):.2f} s median |"
            ),
        ]
        for label, values in measures.items():
            out.append(
                f"| {label} | {len(values)} | {statistics.median(values):.1f} ms | "
                f"{p95(values):.1f} ms | {values[0]:.1f} ms | {values[-1]:.1f} ms | "
                f"{cpu_per_call[label]:.1f} ms mean |"
            )
        print("\n".join(out))
        if args.write:
            docs_block.write_block("reporting", "\n".join(out), heading="## Reporting")
            print(f"written to {docs_block.DOCS}")
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


if __name__ == "__main__":
    main()
