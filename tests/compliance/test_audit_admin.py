"""The audit log in admin: read-only, compliance officers and administrators only, every look recorded."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from compliance.audit import record, verify_chain
from compliance.models import AuditEntry
from tests.auth import staff_client


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def entry(db):
    return record(action="transcript.view", target="conversation:7", details={"reason": "review"})


def last_entry() -> AuditEntry:
    return AuditEntry.objects.order_by("-id").first()


def test_compliance_officer_reads_the_list_and_the_look_is_recorded(client, compliance_officer, entry):
    staff_client(compliance_officer, client=client)
    response = client.get(
        reverse("admin:compliance_auditentry_changelist"), {"q": "conversation:7"}
    )
    assert response.status_code == 200
    assert b"conversation:7" in response.content
    assert b"delete_selected" not in response.content
    assert reverse("admin:compliance_auditentry_add").encode() not in response.content
    look = last_entry()
    assert (look.action, look.target, look.outcome) == ("audit.view", "audit_log", "success")
    assert look.actor == compliance_officer and look.details == {"query": {"q": "conversation:7"}}


def test_an_entry_opens_read_only(client, compliance_officer, entry):
    staff_client(compliance_officer, client=client)
    url = reverse("admin:compliance_auditentry_change", args=[entry.pk])
    response = client.get(url)
    assert response.status_code == 200
    assert b"conversation:7" in response.content and entry.hash.encode() in response.content
    assert b'name="_save"' not in response.content and b'name="target"' not in response.content
    assert last_entry().target == f"audit_entry:{entry.pk}"
    # Posting a change anyway is refused and changes nothing.
    assert client.post(url, {"target": "conversation:8"}).status_code == 403
    assert AuditEntry.objects.get(pk=entry.pk).target == "conversation:7"


@pytest.mark.parametrize("view", ["add", "delete"])
def test_no_adding_or_deleting(client, compliance_officer, entry, view):
    staff_client(compliance_officer, client=client)
    args = [entry.pk] if view == "delete" else []
    url = reverse(f"admin:compliance_auditentry_{view}", args=args)
    assert client.get(url).status_code == 403
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_bulk_delete_action_is_refused(client, compliance_officer, entry):
    staff_client(compliance_officer, client=client)
    response = client.post(
        reverse("admin:compliance_auditentry_changelist"),
        {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"},
    )
    assert response.status_code in (200, 302)  # admin answers "no action selected"
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
    assert verify_chain().ok


def test_staff_with_every_permission_but_not_the_role_is_refused_and_recorded(
    client, agent, entry
):
    agent.user.user_permissions.set(Permission.objects.filter(content_type__app_label="compliance"))
    staff_client(agent.user, client=client)
    assert client.get(reverse("admin:compliance_auditentry_changelist")).status_code == 403
    assert (
        client.get(reverse("admin:compliance_auditentry_change", args=[entry.pk])).status_code
        == 403
    )
    look = last_entry()
    assert (look.action, look.actor, look.outcome) == ("audit.view", agent.user, "denied")
    index = client.get(reverse("admin:index"))
    assert b"Audit entries" not in index.content
