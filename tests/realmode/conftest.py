"""Real mode only: PostgreSQL and Redis from DATABASE_URL and REDIS_URL, real server processes."""

from __future__ import annotations

import time
import uuid

import pytest
from django.db import connection

from tests.conftest import REAL_MODE
from tests.serverprocs import child_env, current_database_url


@pytest.fixture
def realmode_env(transactional_db) -> dict[str, str]:
    """The environment for child processes of one test: the test database, this test's own
    channel-layer prefix (parallel runs on one Redis must not hear each other)."""
    assert REAL_MODE
    return child_env(
        {
            "DATABASE_URL": current_database_url(),
            "CHANNEL_LAYER_PREFIX": f"coachline-test-{uuid.uuid4().hex[:12]}",
            "CHAT_INPROCESS_SWEEPER": "false",
            "DEBUG": "false",
        }
    )


def wait_for_other_sessions_to_end(*, timeout: float = 10.0) -> None:
    """After killing child processes: PostgreSQL notices a vanished client a moment later, and
    until then the test database cannot be flushed cleanly or dropped."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            (others,) = cursor.fetchone()
            if not others or time.monotonic() > deadline:
                return
            time.sleep(0.05)
