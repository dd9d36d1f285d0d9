"""Who may see an archived transcript (and get a link to it): within their departments only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from compliance import archive
from tests.auth import staff_client
from tests.compliance.archive_helpers import ended_chat

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tasks_run_here")]


def test_the_view_permission_reaches_only_the_users_departments(
    department, other_department, department_supervisor, compliance_officer,
    django_capture_on_commit_callbacks,
):
    own = ended_chat(django_capture_on_commit_callbacks, department=department)
    elsewhere = ended_chat(django_capture_on_commit_callbacks, department=other_department)
    department_supervisor.user_permissions.add(
        Permission.objects.get(codename="view_conversationarchive")
    )
    department_supervisor = type(department_supervisor).objects.get(pk=department_supervisor.pk)

    assert archive.can_view_transcript(user=department_supervisor, conversation_number=own.pk)
    assert not archive.can_view_transcript(user=department_supervisor, conversation_number=elsewhere.pk)
    for number in (own.pk, elsewhere.pk):
        assert archive.can_view_transcript(user=compliance_officer, conversation_number=number)

    client = staff_client(department_supervisor)
    assert client.get(reverse("compliance:transcript", args=[own.pk])).status_code == 200
    assert client.get(reverse("compliance:transcript", args=[elsewhere.pk])).status_code == 404
    assert client.get(reverse("compliance:transcript_download", args=[elsewhere.pk])).status_code == 404
    listing = client.get(reverse("admin:compliance_conversationarchive_changelist"))
    assert listing.status_code == 200
    numbers = [row.conversation_number for row in listing.context["cl"].result_list]
    assert numbers == [own.pk]
