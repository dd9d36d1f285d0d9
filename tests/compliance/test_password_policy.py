"""The password policy: rules from admin, history, expiry, and what a change does to sessions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from compliance.models import AuditEntry, PasswordHistory, PasswordPolicy
from tests.auth import staff_client

CHANGE = "/accounts/password/change/"
OLD = "correct-horse-battery"


def _change(client, new: str, old: str = OLD):
    return client.post(CHANGE, {"old_password": old, "new_password1": new, "new_password2": new})


def _errors(response) -> str:
    return response.content.decode()


@pytest.mark.django_db
def test_the_defaults_refuse_short_common_and_username_like_passwords(agent) -> None:
    client = staff_client(agent.user)
    assert "at least 12 characters" in _errors(_change(client, "Sh0rt!pw"))
    assert "too common" in _errors(_change(client, "password1234"))
    assert "too similar to the username" in _errors(_change(client, "alice-alice-alice"))
    assert _change(client, "plum-kettle-orbit-17").status_code == 302


@pytest.mark.django_db
def test_rules_set_in_admin_apply_to_the_change_page(agent, supervisor) -> None:
    admin = staff_client(supervisor)
    response = admin.post(
        "/admin/compliance/passwordpolicy/add/",
        {
            "min_length": 16,
            "min_character_classes": 3,
            "reject_similar_to_username": "on",
            "reject_common": "on",
            "history_count": 5,
            "expiry_days": 0,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert PasswordPolicy.objects.get().min_length == 16
    entry = AuditEntry.objects.get(action="config.created", target="passwordpolicy:1")
    assert entry.actor_username == supervisor.username
    assert entry.details["min_length"] == "16"

    client = staff_client(agent.user)
    assert "at least 16 characters" in _errors(_change(client, "plum-kettle-orb1"[:15]))
    assert "at least 3 of" in _errors(_change(client, "plumkettleorbitsunset"))
    assert _change(client, "Plum-kettle-orbit-sunset").status_code == 302


@pytest.mark.django_db
def test_the_admins_password_form_obeys_the_policy_too(agent, supervisor) -> None:
    PasswordPolicy.objects.create(min_length=20)
    admin = staff_client(supervisor)
    url = f"/admin/auth/user/{agent.user.pk}/password/"
    refused = admin.post(url, {"password1": "plum-kettle-orbit", "password2": "plum-kettle-orbit"})
    assert "at least 20 characters" in refused.content.decode()
    agent.user.refresh_from_db()
    assert agent.user.check_password(OLD)


@pytest.mark.django_db
def test_recent_passwords_cannot_come_back(agent) -> None:
    client = staff_client(agent.user)
    assert _change(client, "plum-kettle-orbit-17").status_code == 302
    assert _change(client, "river-lantern-moss-42", old="plum-kettle-orbit-17").status_code == 302
    again = _change(client, "plum-kettle-orbit-17", old="river-lantern-moss-42")
    assert "You used this password recently" in _errors(again)
    assert "You used this password recently" in _errors(
        _change(client, "river-lantern-moss-42", old="river-lantern-moss-42")
    )
    # Only hashes are kept, and only as many as the policy remembers.
    hashes = PasswordHistory.objects.filter(user=agent.user).values_list("password_hash", flat=True)
    assert all(h.startswith(("md5$", "pbkdf2_")) for h in hashes)
    assert not any("plum" in h for h in hashes)

    PasswordPolicy.objects.create(history_count=0)
    assert _change(client, "plum-kettle-orbit-17", old="river-lantern-moss-42").status_code == 302


@pytest.mark.django_db
def test_an_expired_password_must_be_changed_before_anything_else(agent) -> None:
    client = staff_client(agent.user)
    PasswordHistory.objects.filter(user=agent.user).update(
        changed_at=timezone.now() - timedelta(days=40)
    )
    # Off by default: an old password is fine.
    assert client.get("/agent/").status_code == 200

    PasswordPolicy.objects.create(expiry_days=30)
    response = client.get("/agent/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/password/change/?expired=1"
    page = client.get(response["Location"])
    assert "Your password has expired" in page.content.decode()

    assert _change(client, "plum-kettle-orbit-17").status_code == 302
    assert client.get("/agent/").status_code == 200


@pytest.mark.django_db
def test_a_change_ends_the_other_sessions_and_is_audited(agent) -> None:
    here = staff_client(agent.user)
    elsewhere = staff_client(agent.user)
    elsewhere_key = elsewhere.cookies["sessionid"].value

    assert _change(here, "plum-kettle-orbit-17").status_code == 302

    assert not Session.objects.filter(session_key=elsewhere_key).exists()
    assert elsewhere.get("/agent/").status_code == 302  # back to the login page
    assert here.get("/agent/").status_code == 200
    entry = AuditEntry.objects.get(action="password.changed")
    assert entry.target == "user:alice"
    assert entry.actor_username == "alice"
    assert entry.details == {"other_sessions_ended": 1, "by_self": True}


@pytest.mark.django_db
def test_changepassword_obeys_the_policy(agent, monkeypatch) -> None:
    from django.contrib.auth.management.commands import changepassword
    from django.core.management import CommandError, call_command

    PasswordPolicy.objects.create(min_length=20)
    monkeypatch.setattr(changepassword.getpass, "getpass", lambda prompt="": "plum-kettle-orbit")
    with pytest.raises(CommandError, match="Aborting password change"):
        call_command("changepassword", "alice")
    agent.user.refresh_from_db()
    assert agent.user.check_password(OLD)
