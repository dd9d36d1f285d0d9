"""A new archive rule applied to stored history: database bodies and archived objects."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from chat.models import Message
from compliance import remask
from compliance.models import AuditEntry, ConversationArchive, MaskingRule, RemaskJob
from tests.auth import staff_client
from tests.compliance.archive_helpers import configure, ended_chat


@pytest.fixture(autouse=True)
def _tasks_run_here(settings, tmp_path):
    from config.celery import app

    settings.COMPLIANCE_ARCHIVE_DIR = tmp_path / "archive"
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


def stored(settings, name: str) -> Path:
    return Path(settings.COMPLIANCE_ARCHIVE_DIR) / "coachline/transcripts" / name


def test_new_rule_reaches_database_and_archive_in_resumable_batches(
    department, supervisor, django_capture_on_commit_callbacks, client, settings, monkeypatch
):
    kept = ended_chat(django_capture_on_commit_callbacks, department=department)
    configure(conduit_mode=True)
    conduit = ended_chat(django_capture_on_commit_callbacks, department=department)
    before = {c.pk: ConversationArchive.objects.get(conversation_number=c.pk) for c in (kept, conduit)}
    for record in before.values():
        assert b"secret-4242" in stored(settings, record.location).read_bytes()

    rule = MaskingRule.objects.create(name="codes", pattern=r"secret-\d+", live=False, archive=True)
    monkeypatch.setattr(remask, "BATCH_SIZE", 1)  # many batches from a small history
    monkeypatch.setattr(remask, "ARCHIVE_BATCH_SIZE", 1)
    staff_client(supervisor, client=client)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:compliance_maskingrule_changelist"),
            {"action": "apply_to_history", "_selected_action": [str(rule.pk)]},
        )
    assert response.status_code == 302

    job = RemaskJob.objects.get()
    assert job.state == "done" and job.messages_changed == 1 and job.archives_rewritten == 2
    assert not Message.objects.filter(body__contains="secret-4242").exists()
    assert Message.objects.filter(conversation=kept, body__contains="XXXXXX-XXXX").exists()
    kept.refresh_from_db()
    assert "secret-4242" not in kept.subject and "XXXXXX-XXXX" in kept.subject
    for pk, old in before.items():
        record = ConversationArchive.objects.get(conversation_number=pk)
        assert record.location != old.location and not stored(settings, old.location).exists()
        body = stored(settings, record.location).read_bytes()
        assert hashlib.sha256(body).hexdigest() == record.checksum
        assert b"secret-4242" not in body
        assert "XXXXXX-XXXX" in json.loads(body)["messages"][0]["body"]
    actions = list(AuditEntry.objects.filter(action__startswith="masking.remask").order_by("id").values_list("action", flat=True))
    assert actions == ["masking.remask_started", "masking.remask_finished"]
    assert AuditEntry.objects.filter(action="archive.remasked").count() == 2


def test_a_job_resumes_from_its_cursor(department, django_capture_on_commit_callbacks, monkeypatch):
    for _ in range(3):
        ended_chat(django_capture_on_commit_callbacks, department=department)
    MaskingRule.objects.create(name="codes", pattern=r"secret-\d+", live=False, archive=True)
    monkeypatch.setattr(remask, "BATCH_SIZE", 2)
    job = RemaskJob.objects.create()
    remask.run_batch(job_id=job.pk)  # then the worker "dies": no next task
    job.refresh_from_db()
    assert job.phase == "messages" and job.messages_changed == 1 and job.last_message_id > 0
    while not remask.run_batch(job_id=job.pk):
        pass
    job.refresh_from_db()
    assert job.messages_changed == 3
    assert not Message.objects.filter(body__contains="secret-4242").exists()


def test_a_job_also_masks_tickets_surveys_notes_and_names(department, supervisor, django_capture_on_commit_callbacks):
    from chat.models import Assignment, SurveyResponse, Ticket, TicketMessage, Visitor

    conversation = ended_chat(django_capture_on_commit_callbacks, department=department)
    now = timezone.now()
    ticket = Ticket.objects.create(
        subject="about secret-4242", source="offline", department=department, name="secret-4242",
        email="eve@example.com", created_at=now, updated_at=now,
    )
    TicketMessage.objects.create(ticket=ticket, kind="visitor", body="code secret-4242", created_at=now)
    SurveyResponse.objects.create(
        conversation=conversation, rating=3, comment="secret-4242", answers={"why": "secret-4242", "n": 1},
        submitted_at=now,
    )
    Visitor.objects.filter(pk=conversation.visitor_id).update(name="Eve secret-4242")
    rule = MaskingRule.objects.create(name="codes", pattern=r"secret-\d+", live=False, archive=True)
    with django_capture_on_commit_callbacks(execute=True):
        remask.start_remask(user=supervisor, rule=rule)
    assert RemaskJob.objects.get().state == "done"
    ticket.refresh_from_db()
    assert (ticket.subject, ticket.name) == ("about XXXXXX-XXXX", "XXXXXX-XXXX")
    assert TicketMessage.objects.get().body == "code XXXXXX-XXXX"
    survey = SurveyResponse.objects.get()
    assert survey.comment == "XXXXXX-XXXX" and survey.answers == {"why": "XXXXXX-XXXX", "n": 1}
    assert Visitor.objects.get(pk=conversation.visitor_id).name == "Eve XXXXXX-XXXX"
    assert not Assignment.objects.filter(transfer_note__contains="secret-4242").exists()
