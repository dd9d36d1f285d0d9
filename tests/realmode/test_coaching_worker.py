"""A real Celery worker samples a chat when it ends and again when its late survey arrives."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.utils import timezone

from chat import hooks, services
from chat.models import Conversation, SurveyResponse
from coaching.models import Review, SamplingRule
from tests.factories import AgentFactory, ConversationFactory, DepartmentFactory, UserFactory
from tests.serverprocs import wait_until

pytestmark = [pytest.mark.realmode, pytest.mark.django_db(transaction=True)]


def test_worker_queues_a_chat_on_end_and_on_a_late_low_survey(worker_queue):
    department = DepartmentFactory(name="Patient support", slug="support")
    alice = AgentFactory(user=UserFactory(username="alice"), departments=[department])
    sam = UserFactory(username="sam", is_superuser=True)
    everything = SamplingRule.objects.create(name="All", mode=SamplingRule.Mode.ALL)
    everything.reviewers.set([sam])
    low = SamplingRule.objects.create(name="Low", mode=SamplingRule.Mode.LOW_SCORE, score=2)
    low.reviewers.set([sam])
    chat = ConversationFactory(
        department=department, agent=alice, status=Conversation.Status.ACTIVE
    )

    services.end_conversation(conversation_id=chat.pk, ended_by=Conversation.EndedBy.AGENT)
    wait_until(
        lambda: Review.objects.filter(rule=everything, conversation=chat).exists(),
        timeout=20,
        process=worker_queue,
        what="the worker to queue the ended chat",
    )
    assert not Review.objects.filter(rule=low).exists()  # no survey yet

    with transaction.atomic():
        SurveyResponse.objects.create(conversation=chat, rating=1, submitted_at=timezone.now())
        hooks.survey_submitted_on_commit(chat.pk)
    wait_until(
        lambda: Review.objects.filter(rule=low, conversation=chat).exists(),
        timeout=20,
        process=worker_queue,
        what="the worker to queue the low-rated chat",
    )
    # Evaluated twice, each rule queued the chat once.
    assert Review.objects.filter(conversation=chat).count() == 2
    assert worker_queue.log_text().count("coaching.tasks.sample_conversation") >= 2
