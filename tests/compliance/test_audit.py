"""The audit log: recording, the hash chain, append-only, verify_audit_log, concurrency."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from compliance.audit import GENESIS_HASH, entry_hash, record, verify_chain
from compliance.models import AppendOnlyError, AuditEntry

TABLE = AuditEntry._meta.db_table


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The personas' passwords do not matter here; PBKDF2 would cost most of each test's time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def dba_execute(sql: str, params: list | tuple = ()) -> None:
    """A direct edit in the database, as a DBA would make one: past the ORM and the trigger."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")  # triggers do not fire
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = DEFAULT")


def write_entries(n: int, **kwargs) -> list[AuditEntry]:
    return [
        record(action="test.event", target=f"thing:{i}", details={"i": i}, **kwargs)
        for i in range(n)
    ]


def verify_output() -> str:
    out = []

    class Sink:
        def write(self, text: str) -> None:
            out.append(text)

    call_command("verify_audit_log", stdout=Sink(), stderr=Sink())
    return "".join(out)


# --- record() -------------------------------------------------------------------------------


def test_record_stores_who_what_where_and_chains_from_genesis(db, agent):
    entry = record(
        action="transcript.view",
        actor=agent.user,
        role="Agent",
        source_ip="2001:DB8:0:0::1",
        target="conversation:12",
        details={"reason": "quality review"},
    )
    entry = AuditEntry.objects.get(pk=entry.pk)
    assert entry.actor == agent.user and entry.actor_username == "alice"
    assert (
        entry.role == "Agent"
        and entry.action == "transcript.view"
        and entry.target == "conversation:12"
    )
    assert entry.source_ip == "2001:db8::1"
    assert entry.outcome == "success" and entry.details == {"reason": "quality review"}
    assert timezone.is_aware(entry.at)
    assert entry.prev_hash == GENESIS_HASH
    assert entry.hash == entry_hash(
        {
            f: getattr(entry, f)
            for f in (
                "at",
                "actor_id",
                "actor_username",
                "role",
                "source_ip",
                "action",
                "target",
                "outcome",
                "details",
                "prev_hash",
            )
        }
    )


def test_anonymous_actor_is_nobody_and_outsider_text_is_made_storable(db):
    from django.contrib.auth.models import AnonymousUser

    entry = record(
        action="login.failed",
        actor=AnonymousUser(),
        outcome="failure",
        target="user:" + "x\x00" * 300,  # a typed username: NUL and far too long
        details={"username\x00": "a\x00b"},
    )
    entry = AuditEntry.objects.get(pk=entry.pk)
    assert entry.actor is None and entry.actor_username == ""
    assert len(entry.target) == 255 and "\x00" not in entry.target
    assert entry.details == {"username\ufffd": "a\ufffdb"}
    assert verify_chain().ok


def test_details_read_back_exactly_as_hashed(db):
    # Values whose JSON changes on a round trip through the database (jsonb prints 1e16 as an
    # integer, datetimes become text) must not make the chain look tampered with.
    record(
        action="test.values",
        details={
            "when": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
            "big": 1e16,
            "whole": 2.0,
            "fraction": 0.1,
            "tiny": 1.5e-10,
            "nested": {"b": [1, "two", None, True], "a": "ünïcødé ✓"},
        },
    )
    entry = AuditEntry.objects.get()
    assert entry.details["big"] == 10**16 and entry.details["when"] == "2024-05-01T12:00:00+00:00"
    assert verify_chain().ok


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"action": ""}, ValueError),
        ({"action": "x" * 101}, ValueError),
        ({"action": "a", "outcome": "maybe"}, ValueError),
        ({"action": "a", "details": {"d": object()}}, TypeError),
        ({"action": "a", "details": ["not", "a", "mapping"]}, TypeError),
        ({"action": "a", "source_ip": "not-an-ip"}, ValueError),
    ],
)
def test_bad_calls_fail_loudly(db, kwargs, error):
    with pytest.raises(error):
        record(**kwargs)
    assert not AuditEntry.objects.exists()


def test_entry_rolls_back_with_the_callers_transaction(db):
    record(action="test.before")
    with pytest.raises(RuntimeError), transaction.atomic():
        record(action="test.inside")
        raise RuntimeError("the audited change failed")
    record(action="test.after")
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "test.before",
        "test.after",
    ]
    assert verify_chain().ok


def test_chain_is_valid_after_many_writes(db, agent):
    for batch in range(5):
        with transaction.atomic():  # several entries in one transaction, as a bulk action writes
            write_entries(20, actor=agent.user)
        write_entries(40)
    report = verify_chain(chunk_size=7)  # chunks smaller than the log: the walk crosses fetches
    assert report.ok and report.count == 300
    hashes = list(AuditEntry.objects.order_by("id").values_list("prev_hash", "hash"))
    assert hashes[0][0] == GENESIS_HASH
    assert all(prev == hashes[i - 1][1] for i, (prev, _) in enumerate(hashes) if i)
    assert report.head_hash == hashes[-1][1]


# --- append-only in the ORM -----------------------------------------------------------------


def test_orm_cannot_change_or_remove_entries(db):
    entry, other = write_entries(2)
    entry.target = "thing:forged"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.save(update_fields=["target"])
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).update(target="thing:forged")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.bulk_update([entry], ["target"])
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.update_or_create(pk=other.pk, defaults={"target": "thing:forged"})
    assert list(AuditEntry.objects.order_by("id").values_list("target", flat=True)) == [
        "thing:0",
        "thing:1",
    ]
    assert verify_chain().ok


def test_an_actor_with_entries_cannot_be_deleted(db, agent):
    record(action="test.event", actor=agent.user)
    with pytest.raises(ProtectedError):
        agent.user.delete()


def test_the_chain_cannot_fork(db):
    # Two entries claiming the same predecessor: what two unserialized writers would produce.
    first = record(action="test.event")
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEntry.objects.create(
            at=timezone.now(),
            action="test.fork",
            outcome="success",
            prev_hash=first.prev_hash,
            hash="f" * 64,
        )


# --- verify_audit_log -----------------------------------------------------------------------


def test_verify_passes_with_the_count(db):
    write_entries(25)
    assert "Audit log intact: 25 entries" in verify_output()


def test_verify_passes_on_an_empty_log(db):
    assert "Audit log intact: 0 entries" in verify_output()


@pytest.mark.parametrize(
    "column, value",
    [
        ("target", "thing:innocent"),
        ("actor_username", "someone-else"),
        ("outcome", "failure"),
        ("details", '{"i": 999}'),
        ("source_ip", "10.0.0.1"),
    ],
)
def test_verify_names_a_row_edited_in_the_database(db, column, value):
    entries = write_entries(30)
    edited = entries[17]
    dba_execute(f"UPDATE {TABLE} SET {column} = %s WHERE id = %s", [value, edited.pk])
    with pytest.raises(
        CommandError, match=rf"broken at entry {edited.pk}: its contents do not match"
    ):
        verify_output()
    report = verify_chain()
    assert report.broken_count == 1 and report.broken[0][0] == edited.pk


def test_verify_names_the_first_of_several_edits(db):
    entries = write_entries(30)
    for i in (21, 9, 14):
        dba_execute(f"UPDATE {TABLE} SET target = 'x' WHERE id = %s", [entries[i].pk])
    with pytest.raises(CommandError, match=rf"broken at entry {entries[9].pk}:.*3 of 30 entries"):
        verify_output()


def test_verify_names_the_entry_after_a_removed_one(db):
    entries = write_entries(10)
    dba_execute(f"DELETE FROM {TABLE} WHERE id = %s", [entries[4].pk])
    with pytest.raises(CommandError, match=rf"broken at entry {entries[5].pk}: its prev_hash"):
        verify_output()


def test_verify_notices_a_rehashed_row(db):
    # Someone who edits a row and recomputes its hash still breaks the link of the next entry.
    entries = write_entries(5)
    row = AuditEntry.objects.filter(pk=entries[2].pk).values().get()
    row["target"] = "thing:forged"
    dba_execute(
        f"UPDATE {TABLE} SET target = %s, hash = %s WHERE id = %s",
        ["thing:forged", entry_hash(row), entries[2].pk],
    )
    with pytest.raises(CommandError, match=rf"broken at entry {entries[3].pk}: its prev_hash"):
        verify_output()


def test_verify_failure_is_exit_status_1(db):
    entries = write_entries(3)
    dba_execute(f"UPDATE {TABLE} SET target = 'x' WHERE id = %s", [entries[1].pk])
    with pytest.raises(CommandError) as failed:
        verify_output()
    assert failed.value.returncode == 1  # what manage.py exits with


@pytest.mark.realmode
@pytest.mark.django_db(transaction=True)
def test_verify_from_the_shell_passes_then_names_the_edited_row():
    entries = write_entries(5)

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", "verify_audit_log"],
            check=False,
            cwd=settings.BASE_DIR,
            env=_env_for_test_database(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    passed = run()
    assert passed.returncode == 0 and "intact: 5 entries" in passed.stdout, passed.stderr
    dba_execute(f"UPDATE {TABLE} SET target = 'thing:innocent' WHERE id = %s", [entries[3].pk])
    failed = run()
    assert failed.returncode == 1
    assert f"broken at entry {entries[3].pk}: its contents do not match its hash" in failed.stderr


# --- concurrency ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_threads_writing_at_once_keep_one_chain():
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            barrier.wait()
            for i in range(100):
                record(action="test.concurrent", target=f"writer:{name}", details={"i": i})
        except BaseException as exc:  # noqa: BLE001 - reported below, from the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(name,)) for name in "abc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    report = verify_chain()
    assert report.ok and report.count == 300


@pytest.mark.realmode
@pytest.mark.django_db(transaction=True)
def test_two_processes_writing_at_once_keep_one_chain(tmp_path):
    script = (
        "import os, pathlib, time\n"
        "from compliance.audit import record\n"
        "me, barrier = os.environ['AUDIT_WRITER'], pathlib.Path(os.environ['AUDIT_BARRIER'])\n"
        "(barrier / me).touch()\n"
        "while len(list(barrier.iterdir())) < 2:\n"
        "    time.sleep(0.001)\n"
        "for i in range(200):\n"
        "    record(action='test.concurrent', target='writer:' + me, details={'i': i})\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "shell", "--no-imports", "-c", script],
            cwd=settings.BASE_DIR,
            env={**_env_for_test_database(), "AUDIT_WRITER": name, "AUDIT_BARRIER": str(tmp_path)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outputs = [proc.communicate(timeout=180) for proc in procs]  # both finish before any assert
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, out + err

    report = verify_chain()
    assert report.ok, report.broken
    assert report.count == 400
    rows = list(AuditEntry.objects.order_by("id").values_list("target", "details"))
    for name in ("a", "b"):
        assert [d["i"] for t, d in rows if t == f"writer:{name}"] == list(range(200))
    # The writers really overlapped: the chain alternates between them more than once.
    switches = sum(1 for (t1, _), (t2, _) in itertools.pairwise(rows) if t1 != t2)
    assert switches >= 2, "the two writers did not run at the same time"


# --- the PostgreSQL trigger -----------------------------------------------------------------


@pytest.mark.realmode
@pytest.mark.parametrize(
    "sql",
    [
        f"UPDATE {TABLE} SET target = 'x' WHERE id = %s",
        f"DELETE FROM {TABLE} WHERE id = %s",
        f"TRUNCATE {TABLE}",
    ],
)
def test_postgresql_trigger_refuses_changes(transactional_db, sql):
    # Committed first: PostgreSQL refuses TRUNCATE of a table with pending (deferred FK) events
    # in the same transaction, which would hide what the trigger does.
    entry = record(action="test.event", target="thing:1")
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [entry.pk] if "%s" in sql else [])
    assert AuditEntry.objects.get().target == "thing:1"
    assert verify_chain().ok
    # The test runner's flush (TRUNCATE, let through by compliance's flush command) still works.


def _env_for_test_database() -> dict[str, str]:
    """The environment of a second process that works on this test's PostgreSQL database."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return {**os.environ, "DATABASE_URL": f"postgres://{auth}@{host}:{port}/{db['NAME']}"}
