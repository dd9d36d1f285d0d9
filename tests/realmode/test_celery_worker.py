"""A real Celery worker on Redis runs the sweep: an offer nobody accepted goes back to the queue."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from chat.models import AgentProfile, Assignment, Conversation
from chat.tasks import sweep
from tests.factories import AgentFactory, ConversationFactory, DepartmentFactory, UserFactory
from tests.serverprocs import wait_until

pytestmark = [pytest.mark.realmode, pytest.mark.django_db(transaction=True)]


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
