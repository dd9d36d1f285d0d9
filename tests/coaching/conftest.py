"""Chats as sampling sees them: ended with an agent, optionally rated, transferred, slow, canned."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chat.models import Assignment, Conversation, Message, SurveyResponse
from coaching.models import SamplingRule
from tests.factories import ConversationFactory, UserFactory


@pytest.fixture
def lead(db, department):
    """A supervisor by role (staff, not superuser) who oversees the support department."""
    from tests.factories import AgentFactory, give_role

    user = give_role(UserFactory(username="lena", first_name="Lena", last_name="Lead"), "Supervisor")
    AgentFactory(user=user, display_name="Lena Lead", departments=[department])
    return user


def ended_chat(
    *,
    agent,
    department,
    pk=None,
    rating=None,
    transferred=False,
    waited=5,
    canned_id=None,
    is_training=False,
) -> Conversation:
    start = timezone.now() - timedelta(minutes=30)
    conversation = ConversationFactory(
        pk=pk,
        department=department,
        agent=agent,
        status=Conversation.Status.ENDED,
        created_at=start,
        assigned_at=start + timedelta(seconds=waited),
        ended_at=start + timedelta(minutes=10),
        ended_by=Conversation.EndedBy.AGENT,
        is_training=is_training,
    )
    Assignment.objects.create(
        conversation=conversation,
        agent=agent,
        offered_at=start,
        accepted_at=start + timedelta(seconds=waited),
        ended_at=conversation.ended_at,
        end_reason=Assignment.EndReason.TRANSFERRED
        if transferred
        else Assignment.EndReason.CONVERSATION_ENDED,
    )
    Message.objects.create(
        conversation=conversation,
        seq=1,
        public_seq=1,
        role=Message.Role.AGENT,
        sender=agent.user,
        body="Hello, how can I help?",
        created_at=start + timedelta(seconds=waited + 1),
        meta={"canned": {"id": canned_id, "shortcut": "greeting", "edited": False}}
        if canned_id
        else {},
    )
    if rating is not None:
        SurveyResponse.objects.create(
            conversation=conversation, rating=rating, submitted_at=conversation.ended_at
        )
    return conversation


@pytest.fixture
def make_rule(supervisor):
    def make(*, reviewers=None, departments=(), agents=(), **fields) -> SamplingRule:
        rule = SamplingRule.objects.create(name=fields.pop("name", "Rule"), **fields)
        rule.full_clean()
        rule.reviewers.set(reviewers or [supervisor])
        rule.departments.set(departments)
        rule.agents.set(agents)
        return rule

    return make


@pytest.fixture
def tasks_run_inline():
    """The hooks enqueue a Celery task; here it runs in the test (a real worker runs it in
    tests/realmode/test_coaching_worker.py)."""
    from config.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before
