"""Lockout after repeated failed logins (django-axes), its page, its audit and its clearing."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.test import Client

from compliance.models import AuditEntry
from tests.auth import staff_client
from tests.factories import UserFactory

LOGIN = "/accounts/login/"
PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def _limit(settings):
    settings.AXES_FAILURE_LIMIT = 3


def _try(client: Client, username: str, password: str):
    return client.post(LOGIN, {"username": username, "password": password})


@pytest.mark.django_db
def test_three_failures_lock_the_account_even_for_the_right_password() -> None:
    UserFactory(username="alice", password=PASSWORD)
    client = Client()
    for _ in range(2):
        response = _try(client, "alice", "wrong")
        assert response.status_code == 200
        assert b"didn't match" in response.content
    locked = _try(client, "alice", "wrong")
    assert locked.status_code == 429
    assert b"Too many failed sign-in attempts" in locked.content

    response = _try(client, "alice", PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session

    failures = AuditEntry.objects.filter(action="login.failed", target="user:alice")
    assert failures.count() == 4
    assert AuditEntry.objects.filter(action="login.locked_out", target="user:alice").count() >= 1


@pytest.mark.django_db
def test_the_lockout_page_says_nothing_about_the_account() -> None:
    UserFactory(username="alice", password=PASSWORD)
    pages = []
    for username in ("alice", "nobody-by-this-name"):
        client = Client()
        for _ in range(3):
            response = _try(client, username, "wrong")
        pages.append(response.content.decode())
    assert pages[0] == pages[1]
    assert "alice" not in pages[0]


@pytest.mark.django_db
def test_the_lockout_is_per_username_and_address() -> None:
    UserFactory(username="alice", password=PASSWORD)
    for _ in range(3):
        _try(Client(REMOTE_ADDR="198.51.100.7"), "alice", "wrong")
    # Someone else's guesses from another address do not lock alice out of her own desk.
    response = _try(Client(REMOTE_ADDR="203.0.113.9"), "alice", PASSWORD)
    assert response.status_code == 302


@pytest.mark.django_db
def test_an_administrator_sees_and_clears_a_lockout(supervisor) -> None:
    UserFactory(username="alice", password=PASSWORD)
    for _ in range(3):
        _try(Client(), "alice", "wrong")
    admin = staff_client(supervisor)
    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200
    assert b"alice" in listing.content

    attempt = AccessAttempt.objects.get(username="alice")
    response = admin.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
    cleared = AuditEntry.objects.get(action="login.lockout_cleared")
    assert cleared.actor_username == supervisor.username
    assert cleared.details["cleared"] == ["alice@127.0.0.1"]

    assert _try(Client(), "alice", PASSWORD).status_code == 302
