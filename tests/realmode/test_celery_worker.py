"""A real Celery worker on Redis runs the sweep: an offer nobody accepted goes back to the queue."""

from __future__ import annotations

import sys
import time
import uuid
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from chat.models import AgentProfile, Assignment, Conversation
from chat.tasks import sweep
from config.celery import app
from tests.conftest import real_mode
from tests.factories import AgentFactory, ConversationFactory, DepartmentFactory, UserFactory
from tests.realmode.conftest import wait_for_other_sessions_to_end
from tests.serverprocs import start_process, wait_until

pytestmark = [pytest.mark.realmode, pytest.mark.django_db(transaction=True)]


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


def test_worker_sweep_requeues_an_expired_offer(worker_queue):
    department = DepartmentFactory(name="Patient support", slug="support", accept_timeout_seconds=1)
    agent = AgentFactory(
        user=UserFactory(username="alice"),
        departments=[department],
        presence=AgentProfile.Presence.ONLINE,
        last_seen_at=timezone.now(),
    )
    conversation = ConversationFactory(
        department=department, created_at=timezone.now() - timedelta(minutes=5)
    )
    conversation.status = Conversation.Status.OFFERED
    conversation.agent = agent
    conversation.save(update_fields=["status", "agent"])
    offer = Assignment.objects.create(
        conversation=conversation, agent=agent, offered_at=timezone.now() - timedelta(minutes=4)
    )

    sweep.delay()

    def requeued() -> bool:
        conversation.refresh_from_db()
        return conversation.status == Conversation.Status.QUEUED

    deadline = time.monotonic() + 20
    while not requeued() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert conversation.status == Conversation.Status.QUEUED, (
        f"the worker did not re-queue the offer in 20 s; {worker_queue.describe()}:\n{worker_queue.log_tail()}"
    )
    offer.refresh_from_db()
    agent.refresh_from_db()
    assert conversation.agent_id is None
    assert offer.end_reason == Assignment.EndReason.TIMED_OUT and offer.accepted_at is None
    assert (
        agent.presence == AgentProfile.Presence.AWAY
    )  # the silent agent is set away, not offered it again
    # The worker logs "succeeded" after the task's transaction commits, so the re-queue can be
    # visible here a moment before the line is written: wait for it rather than read once.
    wait_until(
        lambda: "chat.tasks.sweep" in worker_queue.log_text() and "succeeded" in worker_queue.log_text(),
        timeout=10,
        process=worker_queue,
        what="the worker to log the sweep as succeeded",
    )
