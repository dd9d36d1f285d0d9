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
