"""Exporting the audit log: access, filters, formats, streaming, and the export's own entry."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
from datetime import UTC, datetime

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied
from django.db import connections
from django.urls import reverse_lazy
from django.utils import timezone

from compliance import audit_export, roles
from compliance.audit import GENESIS_HASH, record, verify_chain
from compliance.models import AuditEntry
from tests.auth import staff_client
from tests.factories import UserFactory, give_role

URL = reverse_lazy("compliance:audit_export")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The personas' passwords do not matter here; PBKDF2 would cost most of each test's time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def log(db, agent, second_agent, monkeypatch):
    """Five entries over three days, written as the services will write them."""

    def at(day: int, hour: int, **kwargs):
        with monkeypatch.context() as m:
            m.setattr(timezone, "now", lambda: datetime(2026, 3, day, hour, tzinfo=UTC))
            return record(source_ip="192.0.2.7", **kwargs)

    alice, bob = agent.user, second_agent.user
    return [
        at(1, 9, action="login.success", actor=alice, role="Agent", target="user:alice"),
        at(1, 10, action="transcript.view", actor=alice, role="Agent", target="conversation:1"),
        at(
            2,
            11,
            action="transcript.view",
            actor=bob,
            role="Agent",
            target="conversation:2",
            details={"reason": "handover"},
        ),
        at(
            2,
            12,
            action="login.failed",
            target="user:mallory",
            outcome="failure",
            details={"attempt": 3},
        ),
        at(3, 8, action="transcript.export", actor=alice, role="Agent", target="conversation:10"),
    ]


def body(response) -> str:
    return b"".join(response.streaming_content).decode()


def csv_rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body(response))))


def export(client, as_user, **params):
    staff_client(as_user, client=client)
    return client.get(URL, params)


# --- content --------------------------------------------------------------------------------


def test_the_form_page_shows_and_records_nothing(client, compliance_officer, log):
    staff_client(compliance_officer, client=client)
    response = client.get(URL)
    assert response.status_code == 200
    assert b"Export the audit log" in response.content and b'name="date_from"' in response.content
    assert AuditEntry.objects.count() == len(log)


def test_csv_has_every_entry_in_chain_order_with_its_hashes(client, compliance_officer, log):
    response = export(client, compliance_officer, format="csv")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-log-')
    rows = csv_rows(response)
    assert list(rows[0]) == list(audit_export.COLUMNS)
    assert [int(r["id"]) for r in rows] == [e.pk for e in log]
    third = rows[2]
    assert third["at"] == "2026-03-02T11:00:00.000000+00:00"
    assert (third["actor_username"], third["role"], third["source_ip"]) == (
        "bob",
        "Agent",
        "192.0.2.7",
    )
    assert (third["action"], third["target"], third["outcome"]) == (
        "transcript.view",
        "conversation:2",
        "success",
    )
    assert json.loads(third["details"]) == {"reason": "handover"}
    assert third["actor_id"] == str(log[2].actor_id)
    assert rows[3]["actor_id"] == "" and rows[3]["actor_username"] == ""
    assert rows[0]["prev_hash"] == GENESIS_HASH
    assert all(r["prev_hash"] == p["hash"] for p, r in itertools.pairwise(rows))


def test_json_lines_are_exact_enough_to_recompute_the_chain(client, compliance_officer, log):
    response = export(client, compliance_officer, format="jsonl")
    assert response["Content-Type"] == "application/x-ndjson"
    items = [json.loads(line) for line in body(response).splitlines()]
    assert [i["id"] for i in items] == [e.pk for e in log]
    assert items[3]["details"] == {"attempt": 3} and items[3]["actor_id"] is None
    # What an auditor can do with the export alone (the recipe in compliance/audit_export.py).
    previous = GENESIS_HASH
    for item in items:
        payload = {k: v for k, v in item.items() if k not in ("id", "hash")} | {"v": 1}
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert item["prev_hash"] == previous
        assert hashlib.sha256(canonical.encode()).hexdigest() == item["hash"]
        previous = item["hash"]


@pytest.mark.parametrize(
    "params, targets",
    [
        ({"date_from": "2026-03-02"}, ["conversation:2", "user:mallory", "conversation:10"]),
        ({"date_to": "2026-03-01"}, ["user:alice", "conversation:1"]),
        ({"date_from": "2026-03-02", "date_to": "2026-03-02"}, ["conversation:2", "user:mallory"]),
        ({"user": "bob"}, ["conversation:2"]),
        ({"action": "transcript.view"}, ["conversation:1", "conversation:2"]),
        ({"action": "login.*"}, ["user:alice", "user:mallory"]),
        ({"target": "conversation:1"}, ["conversation:1"]),
        ({"target": "conversation:*"}, ["conversation:1", "conversation:2", "conversation:10"]),
        ({"user": "alice", "action": "transcript.*", "date_to": "2026-03-02"}, ["conversation:1"]),
        ({"user": "nobody"}, []),
    ],
)
def test_filters(client, compliance_officer, log, params, targets):
    rows = csv_rows(export(client, compliance_officer, format="csv", **params))
    assert [r["target"] for r in rows] == targets


def test_spreadsheet_formulas_are_defused_in_csv_only(client, compliance_officer, db):
    record(action="login.failed", target='=HYPERLINK("http://evil.example","x")', outcome="failure")
    [row] = csv_rows(export(client, compliance_officer, format="csv", action="login.failed"))
    assert row["target"] == '\'=HYPERLINK("http://evil.example","x")'
    [line] = body(
        export(client, compliance_officer, format="jsonl", action="login.failed")
    ).splitlines()
    assert json.loads(line)["target"] == '=HYPERLINK("http://evil.example","x")'


def test_export_streams_in_chunks_and_stops_at_its_own_entry(
    client, compliance_officer, log, monkeypatch
):
    monkeypatch.setattr(audit_export, "ROWS_PER_WRITE", 2)
    response = export(client, compliance_officer, format="jsonl")
    record(action="test.written_while_streaming")  # after the export started: not in it
    chunks = list(response.streaming_content)
    assert [c.count(b"\n") for c in chunks] == [2, 2, 1]
    ids = [json.loads(line)["id"] for c in chunks for line in c.splitlines()]
    assert ids == [e.pk for e in log]


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_export_is_an_async_stream(async_client):
    officer = await sync_to_async(
        lambda: give_role(UserFactory(username="carol"), roles.COMPLIANCE_OFFICER)
    )()
    for i in range(3):
        await sync_to_async(record)(action="test.event", target=f"thing:{i}")
    try:
        await sync_to_async(staff_client)(officer, client=async_client)
        response = await async_client.get(URL, {"format": "jsonl"})
        assert response.status_code == 200 and response.is_async  # Django would buffer a sync one
        lines = [line async for chunk in response.streaming_content for line in chunk.splitlines()]
        assert [json.loads(line)["target"] for line in lines] == ["thing:0", "thing:1", "thing:2"]
    finally:
        # The ORM ran in asgiref's sync thread; its connection would keep the test database busy.
        await sync_to_async(connections.close_all)()


# --- the export's own entry -----------------------------------------------------------------


def test_the_export_is_audited_with_its_filters(client, compliance_officer, log):
    body(export(client, compliance_officer, format="csv", date_from="2026-03-02", action="login.*"))
    entry = AuditEntry.objects.order_by("-id").first()
    assert (entry.action, entry.target, entry.outcome) == ("audit.export", "audit_log", "success")
    assert entry.actor == compliance_officer and entry.role == "Compliance officer"
    assert entry.source_ip == "127.0.0.1"
    assert entry.details == {
        "format": "csv",
        "date_from": "2026-03-02",
        "date_to": None,
        "user": "",
        "action": "login.*",
        "target": "",
    }
    assert verify_chain().ok


# --- refusals -------------------------------------------------------------------------------


def test_staff_who_are_not_compliance_officers_get_403_and_are_recorded(client, agent, log):
    response = export(client, agent.user, format="csv")
    assert response.status_code == 403
    entry = AuditEntry.objects.order_by("-id").first()
    assert (entry.action, entry.actor, entry.outcome) == ("audit.export", agent.user, "denied")
    staff_client(agent.user, client=client)
    assert client.get(URL).status_code == 403  # the form page too


def test_visitors_are_sent_to_the_login(client, log):
    response = client.get(URL, {"format": "csv"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert AuditEntry.objects.count() == len(log)


def test_the_selector_checks_access_itself(agent):
    with pytest.raises(PermissionDenied):
        audit_export.entries_for_export(
            user=agent.user, filters=audit_export.ExportFilters(format="csv")
        )


@pytest.mark.parametrize(
    "params, message",
    [
        (
            {"format": "csv", "date_from": "2026-03-03", "date_to": "2026-03-01"},
            "The date range is backwards: 2026-03-03 is after 2026-03-01.",
        ),
        ({"format": "xml"}, "Unknown format xml; choose csv or jsonl."),
        ({"format": ""}, "Choose a format: csv or jsonl."),
        ({"format": "csv", "date_from": "2026-13-01"}, "Enter a valid date."),
    ],
)
def test_bad_filters_get_400_with_a_clear_message(client, compliance_officer, log, params, message):
    response = export(client, compliance_officer, **params)
    assert response.status_code == 400
    assert message in response.content.decode()
    entry = AuditEntry.objects.order_by("-id").first()
    assert (entry.action, entry.outcome) == ("audit.export", "failure")
    assert message in json.dumps(entry.details)
