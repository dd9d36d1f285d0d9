"""Workspace pages: transcripts behind an access check, an agent's own canned responses, avatars."""

from __future__ import annotations

import io

import pytest
from django.utils import timezone
from PIL import Image

from chat.models import AgentProfile, CannedResponse, Message
from compliance.models import AuditEntry
from tests.auth import staff_client
from tests.factories import ConversationFactory, UserFactory


@pytest.fixture
def transcript(department):
    conversation = ConversationFactory(
        department=department, status="ended", created_at=timezone.now()
    )
    now = timezone.now()
    Message.objects.create(
        conversation=conversation,
        seq=1,
        public_seq=1,
        role="visitor",
        body="I need <b>help</b>",
        created_at=now,
    )
    Message.objects.create(
        conversation=conversation,
        seq=2,
        role="agent",
        visibility="internal",
        body="Staff-only note",
        created_at=now,
    )
    return conversation


def test_transcript_for_agents_of_its_department_only(
    transcript, agent, make_agent, other_department
):
    page = staff_client(agent.user).get(f"/agent/transcripts/{transcript.pk}/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "I need &lt;b&gt;help&lt;/b&gt;" in text  # text, not HTML
    assert "Staff-only note" in text
    outsider = make_agent("carol", "Carol Other", [other_department])
    assert (
        staff_client(outsider.user).get(f"/agent/transcripts/{transcript.pk}/").status_code == 404
    )
    assert staff_client(agent.user).get("/agent/transcripts/999999/").status_code == 404


def test_agent_manages_own_canned_responses(agent, second_agent):
    bobs = CannedResponse.objects.create(
        shortcut="bob", title="Bob's", body="Bob here.", owner=second_agent
    )
    client = staff_client(agent.user)
    response = client.post(
        "/agent/canned/new/",
        {"shortcut": "Sig", "title": "Sign-off", "body": "Cheers, {agent_name}"},
    )
    assert response.status_code == 302
    mine = CannedResponse.objects.get(owner=agent)
    assert (mine.shortcut, mine.department_id) == ("sig", None)
    # A second one with the same shortcut: a clear error, and the typed text is still in the form.
    again = client.post(
        "/agent/canned/new/", {"shortcut": "sig", "title": "Other", "body": "Typed text kept"}
    )
    assert again.status_code == 200
    assert "already have a response with this shortcut" in again.content.decode()
    assert "Typed text kept" in again.content.decode()
    assert (
        client.post(
            f"/agent/canned/{mine.pk}/", {"shortcut": "sig", "title": "T", "body": "New"}
        ).status_code
        == 302
    )
    mine.refresh_from_db()
    assert mine.body == "New"
    # Bob's is not Alice's to change or delete.
    assert (
        client.post(
            f"/agent/canned/{bobs.pk}/", {"shortcut": "x", "title": "x", "body": "x"}
        ).status_code
        == 404
    )
    assert client.post(f"/agent/canned/{bobs.pk}/delete/").status_code == 404
    assert CannedResponse.objects.filter(pk=bobs.pk, body="Bob here.").exists()
    assert client.post(f"/agent/canned/{mine.pk}/delete/").status_code == 302
    assert not CannedResponse.objects.filter(owner=agent).exists()


def _png(size=(400, 300), fmt="PNG") -> io.BytesIO:
    data = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(data, format=fmt)
    data.seek(0)
    data.name = "me." + fmt.lower()
    return data


def test_avatar_upload_is_checked_resized_and_served(agent, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    client = staff_client(agent.user)
    assert client.post("/agent/profile/", {"image": _png(fmt="JPEG")}).status_code == 302
    agent.refresh_from_db()
    with agent.avatar.open("rb") as f:
        stored = Image.open(f)
        assert (stored.format, stored.size) == ("PNG", (128, 128))
    assert AuditEntry.objects.filter(
        action="agent.avatar_changed", target=f"agent:{agent.pk}"
    ).exists()
    served = client.get(agent.avatar.url)
    assert served.status_code == 200 and served["Content-Type"] == "image/png"

    # Not a picture, or too big: refused with a message, the current avatar stays.
    fake = io.BytesIO(b"<?php echo 1; ?>")
    fake.name = "me.png"
    page = client.post("/agent/profile/", {"image": fake})
    assert "not a picture we can read" in page.content.decode()
    big = io.BytesIO(b"\x89PNG" + b"0" * (2 * 1024 * 1024))
    big.name = "big.png"
    assert "larger than 2 MB" in client.post("/agent/profile/", {"image": big}).content.decode()
    name = agent.avatar.name
    agent.refresh_from_db()
    assert agent.avatar.name == name

    assert client.get("/media/avatars/..%2Fsecret.png").status_code == 404
    assert client.post("/agent/profile/avatar/remove/").status_code == 302
    agent.refresh_from_db()
    assert not agent.avatar
    assert "AA" in client.get("/agent/profile/").content.decode()  # initials instead


def test_pages_are_for_agents(db):
    user = UserFactory(username="notagent")
    client = staff_client(user)
    assert client.get("/agent/canned/").status_code == 404
    assert client.get("/agent/profile/").status_code == 404
    assert not AgentProfile.objects.exists()


def test_crm_key_is_never_shown_back_in_admin(supervisor):
    from chat.models import CrmLookup

    config = CrmLookup.objects.create(
        url_template="https://crm.example/c?e={email}",
        header_name="X-Key",
        api_key="top-secret-key",
    )
    client = staff_client(supervisor)
    page = client.get(f"/admin/chat/crmlookup/{config.pk}/change/")
    assert page.status_code == 200
    assert "top-secret-key" not in page.content.decode()
    form = {
        "enabled": "on",
        "url_template": "https://crm.example/v2?e={email}",
        "header_name": "X-Key",
        "api_key": "",
        "timeout_seconds": "1.5",
        "cache_seconds": "30",
    }
    assert client.post(f"/admin/chat/crmlookup/{config.pk}/change/", form).status_code == 302
    config.refresh_from_db()
    assert (config.url_template, config.api_key, config.timeout_seconds) == (
        "https://crm.example/v2?e={email}",
        "top-secret-key",
        1.5,
    )
    bad = client.post(
        f"/admin/chat/crmlookup/{config.pk}/change/", {**form, "timeout_seconds": "90"}
    )
    assert bad.status_code == 200  # refused by the check constraint, shown as a form error
