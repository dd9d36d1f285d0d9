"""Retention: expired conversations are purged only once archived, never under legal hold."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from chat.models import Conversation, Message, Visitor
from compliance import retention
from compliance.models import AuditEntry, ConversationArchive, RetentionPolicy
from tests.auth import staff_client
from tests.compliance.archive_helpers import ended_chat


@pytest.fixture(autouse=True)
def _tasks_run_here(settings, tmp_path):
    from config.celery import app

    settings.COMPLIANCE_ARCHIVE_DIR = tmp_path / "archive"
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


def test_purge_follows_department_policies_archive_state_and_legal_hold(
    department, other_department, supervisor, django_capture_on_commit_callbacks, client
):
    RetentionPolicy.objects.create(department=None, keep_days=30)
    RetentionPolicy.objects.create(department=department, keep_days=5)
    short = ended_chat(django_capture_on_commit_callbacks, department=department)
    held = ended_chat(django_capture_on_commit_callbacks, department=department)
    unarchived = ended_chat(django_capture_on_commit_callbacks, department=department)
    long_kept = ended_chat(django_capture_on_commit_callbacks, department=other_department)
    ConversationArchive.objects.filter(conversation_number=unarchived.pk).update(
        state="failed", checksum=""
    )
    staff_client(supervisor, client=client)
    held_archive = ConversationArchive.objects.get(conversation_number=held.pk)
    response = client.post(
        reverse("admin:compliance_conversationarchive_changelist"),
        {"action": "place_legal_hold", "_selected_action": [str(held_archive.pk)]},
    )
    assert response.status_code == 302
    held_archive.refresh_from_db()
    assert held_archive.legal_hold
    hold_entry = AuditEntry.objects.filter(action="retention.legal_hold").get()
    assert hold_entry.actor == supervisor and hold_entry.target == f"conversation:{held.pk}"

    # Nothing is due yet.
    assert retention.purge_expired(now=timezone.now() + timedelta(days=4)) == 0

    ten_days_on = timezone.now() + timedelta(days=10)
    assert retention.purge_expired(now=ten_days_on) == 1
    assert not Conversation.objects.filter(pk=short.pk).exists()
    assert not Message.objects.filter(conversation_id=short.pk).exists()
    for kept in (held, unarchived, long_kept):
        assert Conversation.objects.filter(pk=kept.pk).exists()

    record = ConversationArchive.objects.get(conversation_number=short.pk)
    assert record.conversation is None and record.purged_at == ten_days_on
    assert record.state == "confirmed"  # the transcript itself stays in storage
    purge = AuditEntry.objects.filter(action="retention.purge").get()
    assert purge.target == f"conversation:{short.pk}" and purge.outcome == "success"
    assert purge.details["archive_checksum"] == record.checksum
    assert purge.details["messages"] == 2
    assert purge.details["visitor_purged"] is True
    assert not Visitor.objects.filter(pk=short.visitor_id).exists()

    # The default policy (30 days) reaches the other department later; the hold still wins.
    assert retention.purge_expired(now=timezone.now() + timedelta(days=31)) == 1
    assert not Conversation.objects.filter(pk=long_kept.pk).exists()
    assert Conversation.objects.filter(pk=held.pk).exists()


def test_without_a_policy_nothing_is_purged(department, django_capture_on_commit_callbacks):
    chat = ended_chat(django_capture_on_commit_callbacks, department=department)
    assert retention.purge_expired(now=timezone.now() + timedelta(days=3650)) == 0
    assert Conversation.objects.filter(pk=chat.pk).exists()


def test_retention_policy_change_in_admin_is_audited(department, supervisor, client):
    staff_client(supervisor, client=client)
    response = client.post(
        reverse("admin:compliance_retentionpolicy_add"),
        {"department": str(department.pk), "keep_days": "90", "enabled": "on"},
    )
    assert response.status_code == 302
    entry = AuditEntry.objects.filter(action="retention.policy_changed").get()
    assert entry.actor == supervisor
    assert entry.details == {"department_id": department.pk, "keep_days": 90, "enabled": True}
