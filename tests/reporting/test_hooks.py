"""Ending a chat refreshes its day's figures through chat's hook (eager Celery in the embedded default)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from chat import services as chat_services
from reporting.models import ConversationFact, DailyRollup
from tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_ending_a_chat_updates_the_rollup(department, settings):
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        pytest.skip("the real-mode path is a worker; see tests/realmode/test_reporting_worker.py")
    conversation = ConversationFactory(department=department, created_at=timezone.now())
    chat_services.end_conversation(conversation_id=conversation.pk, ended_by="visitor")
    fact = ConversationFact.objects.get(conversation_id=conversation.pk)
    assert fact.status == "abandoned"
    assert DailyRollup.objects.get(day=fact.day, department=department).abandoned == 1


def test_scoring_a_review_feeds_the_qa_figures_of_the_chats_day(department, agent, settings):
    """Coaching's scorecard, filled days later, lands on the day of the reviewed chat."""
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        pytest.skip("the real-mode path is a worker")
    from coaching import services as coaching_services
    from coaching.models import Criterion, Review, Scorecard
    from reporting import selectors
    from tests.factories import UserFactory

    boss = UserFactory(username="lead", is_superuser=True)
    created = timezone.now() - timezone.timedelta(days=3)
    conversation = ConversationFactory(
        department=department,
        agent=agent,
        status="ended",
        created_at=created,
        assigned_at=created,
        ended_at=created + timezone.timedelta(minutes=5),
    )
    review = Review.objects.create(
        conversation=conversation, reviewer=boss, agent=agent, created_at=timezone.now()
    )
    card = Scorecard.objects.create(name="Basics")
    yes = Criterion.objects.create(scorecard=card, label="Greets", kind="yes_no", weight=1)
    scale = Criterion.objects.create(scorecard=card, label="Tone", kind="scale", weight=3)
    # Nothing counted before the score: a new review without one changes no figure.
    assert not DailyRollup.objects.filter(qa_count__gt=0).exists()
    coaching_services.fill_scorecard(
        user=boss, review_id=review.pk, scorecard_id=card.pk, values={yes.pk: 1, scale.pk: 4}
    )
    fact = ConversationFact.objects.get(conversation_id=conversation.pk)
    assert (fact.qa_count, fact.qa_score_sum) == (1, 81.25)  # (1·1 + 0.75·3) / 4
    day = fact.day
    figures = selectors.summary(user=boss, start=day, end=day)
    assert (figures["qa_reviews"], figures["qa_average"]) == (1, 81.25)
    row = selectors.agent_table(user=boss, start=day, end=day)[0]
    assert (row["qa_reviews"], row["qa_average"]) == (1, 81.25)
    review.delete()
    assert selectors.summary(user=boss, start=day, end=day)["qa_reviews"] == 0


def test_a_ticket_made_from_a_chat_later_counts_on_the_chats_day(department, settings):
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        pytest.skip("the real-mode path is a worker")
    from chat.models import Ticket

    created = timezone.now() - timezone.timedelta(days=5)
    conversation = ConversationFactory(department=department, created_at=created)
    chat_services.end_conversation(conversation_id=conversation.pk, ended_by="visitor")
    fact = ConversationFact.objects.get(conversation_id=conversation.pk)
    assert fact.tickets == 0
    now = timezone.now()
    Ticket.objects.create(
        subject="Call back",
        source="chat",
        department=department,
        conversation=conversation,
        email="v@example.com",
        created_at=now,
        updated_at=now,
    )
    assert DailyRollup.objects.get(day=fact.day, department=department).tickets == 1
