"""A burst of parallel wrong passwords gets no more tries than the lockout limit (PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import Client

from compliance.models import AuditEntry
from tests.factories import UserFactory

pytestmark = pytest.mark.realmode
LIMIT = 3
BURST = 12


def test_parallel_wrong_passwords_get_only_the_limit(transactional_db, settings) -> None:
    settings.AXES_FAILURE_LIMIT = LIMIT
    UserFactory(username="alice", password="correct-horse-battery")
    barrier = threading.Barrier(BURST)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def guess(n: int) -> None:
        try:
            client = Client()
            barrier.wait(timeout=30)
            response = client.post(
                "/accounts/login/", {"username": "alice", "password": f"wrong-{n}"}
            )
            statuses.append(response.status_code)
        except Exception as exc:  # noqa: BLE001 - any failure in a thread is reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(statuses) == BURST
    # The first LIMIT-1 guesses are answered "didn't match", the LIMIT-th locks; every other
    # guess meets the lockout before its password is looked at.
    assert statuses.count(200) == LIMIT - 1, statuses
    assert statuses.count(429) == BURST - (LIMIT - 1), statuses
    checked = AuditEntry.objects.filter(
        action="login.failed", target="user:alice", details__password_checked=True
    )
    assert checked.count() == LIMIT
    assert AuditEntry.objects.filter(action="login.failed", target="user:alice").count() == BURST
