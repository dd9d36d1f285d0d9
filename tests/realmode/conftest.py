"""Real mode only: PostgreSQL and Redis from DATABASE_URL and REDIS_URL, real server processes."""

from __future__ import annotations

import sys
import time
import uuid

import pytest
import redis
from django.conf import settings
from django.db import connection

from config.celery import app
from tests.conftest import REAL_MODE, real_mode
from tests.serverprocs import child_env, current_database_url, start_process, wait_until


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


@pytest.fixture
def worker_queue(realmode_env):
    """A worker listening on a queue of its own, and `.delay()` here routed to that queue: another
    worker on the same Redis (a developer's `make worker`, a parallel CI run) cannot take the task."""
    if not real_mode():
        pytest.skip("needs PostgreSQL and Redis")
    assert not settings.CELERY_TASK_ALWAYS_EAGER, "real mode must send tasks to the broker"
    queue = f"coachline-test-{uuid.uuid4().hex[:12]}"
    default_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    worker = start_process(
        "celery-worker",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "-Q",
            queue,
            "-n",
            f"{queue}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=realmode_env,
    )
    try:
        wait_until(
            lambda: " ready." in worker.log_text(),
            timeout=30,
            process=worker,
            what="the worker to be ready",
        )
        yield worker
    finally:
        app.conf.task_default_queue = default_queue
        worker.stop()
        wait_for_other_sessions_to_end()
        # The queue and its exchange binding would otherwise stay in Redis after every run.
        with redis.Redis.from_url(settings.REDIS_URL) as client:
            client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
