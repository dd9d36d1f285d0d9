"""Sampling races against real PostgreSQL: the end of a chat and its survey evaluated by two
workers at the same moment, and a daily cap raced by many chats at once.

Each thread has its own connection and starts at the same barrier. Without the rule's row lock in
coaching.services.sample_conversation one of these fails: an IntegrityError from the unique
(rule, conversation) constraint escaping a worker, or a daily cap overrun.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone

from chat.models import SurveyResponse
from coaching import services
from coaching.models import Review, SamplingRule
from tests.coaching.conftest import ended_chat
from tests.conftest import real_mode
from tests.factories import AgentFactory, DepartmentFactory, UserFactory

pytestmark = [pytest.mark.realmode, pytest.mark.django_db(transaction=True)]

THREADS = 6


@pytest.fixture(autouse=True)
def _postgres_only():
    if not real_mode():
        pytest.skip("needs PostgreSQL: the point is its row locks")


def at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released together; return their results, fail on any error."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[str] = []

    def work(i: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = call()
        except Exception:  # noqa: BLE001 - reported below with the traceback
            errors.append(traceback.format_exc())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[0]
    return results


@pytest.fixture
def people():
    department = DepartmentFactory(name="Patient support", slug="support")
    agent = AgentFactory(user=UserFactory(username="alice"), departments=[department])
    sam = UserFactory(username="sam", is_superuser=True)
    lena = UserFactory(username="lena", is_superuser=True)
    return department, agent, [sam, lena]


def test_end_and_survey_evaluated_at_once_queue_the_chat_once_per_rule(people):
    department, agent, reviewers = people
    everything = SamplingRule.objects.create(name="All", mode=SamplingRule.Mode.ALL)
    everything.reviewers.set(reviewers)
    low = SamplingRule.objects.create(name="Low", mode=SamplingRule.Mode.LOW_SCORE, score=2)
    low.reviewers.set(reviewers)
    chats = [ended_chat(agent=agent, department=department) for _ in range(5)]
    for chat in chats:
        SurveyResponse.objects.create(conversation=chat, rating=1, submitted_at=timezone.now())

    for chat in chats:
        created = at_once(
            [lambda c=chat: services.sample_conversation(conversation_id=c.pk)] * THREADS
        )
        # Between them the workers made exactly one review per rule; the rest found it made.
        assert sorted(r.rule_id for batch in created for r in batch) == [everything.pk, low.pk]
    assert Review.objects.count() == 2 * len(chats)
    for rule in (everything, low):
        per_chat = Review.objects.filter(rule=rule).values_list("conversation_id", flat=True)
        assert sorted(per_chat) == sorted(c.pk for c in chats)


def test_a_daily_cap_holds_when_many_chats_end_at_once(people):
    department, agent, reviewers = people
    capped = SamplingRule.objects.create(name="Capped", mode=SamplingRule.Mode.ALL, daily_cap=3)
    capped.reviewers.set(reviewers)
    chats = [ended_chat(agent=agent, department=department) for _ in range(THREADS * 2)]

    at_once([lambda c=chat: services.sample_conversation(conversation_id=c.pk) for chat in chats])

    assert Review.objects.filter(rule=capped).count() == 3
    # Spread over the two reviewers by open reviews: 2 and 1, never 3 and 0.
    per_reviewer = sorted(
        Review.objects.filter(rule=capped).values_list("reviewer__username", flat=True)
    )
    assert per_reviewer in (["lena", "sam", "sam"], ["lena", "lena", "sam"])
