from __future__ import annotations

from django.core.management import call_command
from django.utils import timezone

from chat.models import Conversation
from reporting import selectors
from reporting.models import DailyRollup
from tests.factories import UserFactory


def test_seed_demo_adds_history_once_and_the_dashboard_has_data(db):
    call_command("seed_demo")
    n = Conversation.objects.count()
    assert n > 100
    call_command("seed_demo")
    assert Conversation.objects.count() == n
    assert DailyRollup.objects.exists()
    boss = UserFactory(username="boss", is_superuser=True)
    today = timezone.localdate()
    figures = selectors.summary(user=boss, start=today - timezone.timedelta(days=28), end=today)
    assert figures["chats"] == n
