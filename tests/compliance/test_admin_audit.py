"""Every back-office change and every look at a transcript leaves an audit entry (issue 5)."""

from __future__ import annotations

import pytest

from chat.models import Department
from compliance.audit import verify_chain
from compliance.models import AuditEntry
from tests.auth import staff_client
from tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db


def entries(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


def test_a_change_in_the_back_office_is_audited_with_who_where_and_what(administrator, department):
    client = staff_client(administrator)
    response = client.post(
        f"/admin/chat/department/{department.pk}/change/",
        {"name": "Patient care", "slug": department.slug, "routing": "pick", "accept_timeout_seconds": 45},
        REMOTE_ADDR="10.1.2.3",
    )
    assert response.status_code == 302, response.content[:2000]
    department.refresh_from_db()
    assert department.name == "Patient care"
    [entry] = entries("admin.changed")
    assert entry.actor == administrator and entry.role == "Administrator"
    assert entry.target == f"chat.department:{department.pk}" and entry.source_ip == "10.1.2.3"
    assert "Name" in entry.details["change"] and entry.details["object"] == "Patient care"


def test_a_refused_change_leaves_no_entry(department_supervisor, department):
    # Supervisors may view departments but not change them.
    client = staff_client(department_supervisor)
    response = client.post(
        f"/admin/chat/department/{department.pk}/change/",
        {"name": "Hijacked", "slug": department.slug, "routing": "auto", "accept_timeout_seconds": 30},
    )
    assert response.status_code == 403
    assert Department.objects.get(pk=department.pk).name != "Hijacked"
    assert entries("admin.changed") == []


def test_opening_a_transcript_in_the_back_office_is_audited(administrator, department):
    conversation = ConversationFactory(department=department)
    client = staff_client(administrator)
    assert client.get(f"/admin/chat/conversation/{conversation.pk}/change/").status_code == 200
    assert client.get("/admin/chat/conversation/999999/change/").status_code == 302  # no such chat
    [entry] = entries("transcript.view")
    assert entry.target == f"conversation:{conversation.pk}" and entry.details == {"where": "back office"}
    assert verify_chain().ok


def test_opening_a_transcript_in_the_workspace_is_audited(agent, department):
    conversation = ConversationFactory(department=department)
    client = staff_client(agent.user)
    assert client.get(f"/agent/transcripts/{conversation.pk}/").status_code == 200
    [entry] = entries("transcript.view")
    assert entry.actor == agent.user and entry.details == {"where": "workspace"}
