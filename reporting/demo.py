"""Generated chat history for the demo (`seed_history`), so the dashboard's charts are not empty."""

from __future__ import annotations

import datetime as dt
import random

from django.db import transaction
from django.utils import timezone

from chat.models import (
    AgentProfile,
    Assignment,
    Conversation,
    Department,
    Message,
    PresenceInterval,
    ProactiveInvitation,
    SurveyResponse,
    Visitor,
    hash_token,
)
from reporting import services

DEMO_VISITOR_NAME = "Demo history visitor"


def has_history() -> bool:
    return Visitor.objects.filter(name=DEMO_VISITOR_NAME).exists()


@transaction.atomic
def generate_history(*, days: int = 21, chats_per_day: int = 40, seed: int = 7) -> int:
    """Chats, transfers, surveys, invitations and presence for the `days` before today; returns chats."""
    rng = random.Random(seed)
    departments = list(Department.objects.all())
    agents = list(AgentProfile.objects.prefetch_related("departments"))
    if not departments or not agents:
        return 0
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    conversations: list[Conversation] = []
    plans = []
    presence = []
    for d in range(days, 0, -1):
        day = today - dt.timedelta(days=d)
        for agent in agents:
            presence.append(
                PresenceInterval(
                    agent=agent,
                    status="online",
                    started_at=day + dt.timedelta(hours=7),
                    ended_at=day + dt.timedelta(hours=17),
                )
            )
        for _ in range(rng.randint(chats_per_day // 2, chats_per_day)):
            created = day + dt.timedelta(seconds=rng.randint(7 * 3600, 17 * 3600 - 1800))
            department = rng.choice(departments)
            fate = rng.random()
            visitor = Visitor(token_hash=hash_token(f"demo-{rng.random()}"), name=DEMO_VISITOR_NAME)
            plans.append((visitor, department, created, fate))
    Visitor.objects.bulk_create([p[0] for p in plans])
    PresenceInterval.objects.bulk_create(presence)
    for visitor, department, created, fate in plans:
        staff = [a for a in agents if department in a.departments.all()] or agents
        agent = rng.choice(staff)
        c = Conversation(
            visitor=visitor, department=department, created_at=created, queued_at=created
        )
        if fate < 0.06:
            c.status, c.ended_at = "missed", created + dt.timedelta(minutes=3)
        elif fate < 0.12:
            c.status, c.ended_at = "abandoned", created + dt.timedelta(seconds=rng.randint(20, 120))
        else:
            c.status, c.agent = "ended", agent
            c.assigned_at = created + dt.timedelta(seconds=rng.randint(5, 180))
            c.first_agent_reply_at = c.assigned_at + dt.timedelta(seconds=rng.randint(5, 90))
            c.ended_at = c.assigned_at + dt.timedelta(seconds=rng.randint(180, 1500))
        conversations.append(c)
    Conversation.objects.bulk_create(conversations)
    assignments, messages, surveys, invitations = [], [], [], []
    for c in conversations:
        if c.status != "ended":
            continue
        assignments.append(
            Assignment(
                conversation=c,
                agent=c.agent,
                offered_at=c.assigned_at,
                accepted_at=c.assigned_at,
                ended_at=c.ended_at,
                end_reason="ended",
            )
        )
        for seq in range(1, 5):
            meta = (
                {"canned": {"id": 0, "shortcut": "greeting", "edited": False}}
                if seq == 2 and rng.random() < 0.4
                else {}
            )
            messages.append(
                Message(
                    conversation=c,
                    seq=seq,
                    public_seq=seq,
                    role="agent" if seq % 2 == 0 else "visitor",
                    body="…",
                    meta=meta,
                    created_at=c.first_agent_reply_at,
                )
            )
        if rng.random() < 0.45:
            surveys.append(
                SurveyResponse(
                    conversation=c,
                    rating=rng.choice([2, 3, 4, 4, 5, 5, 5]),
                    submitted_at=c.ended_at + dt.timedelta(minutes=1),
                )
            )
        if rng.random() < 0.1:
            invitations.append(
                ProactiveInvitation(
                    visitor=c.visitor,
                    department=c.department,
                    status="accepted",
                    sent_at=c.created_at - dt.timedelta(seconds=30),
                    responded_at=c.created_at,
                    conversation=c,
                )
            )
    Assignment.objects.bulk_create(assignments)
    Message.objects.bulk_create(messages)
    SurveyResponse.objects.bulk_create(surveys)
    ProactiveInvitation.objects.bulk_create(invitations)
    services.recompute_days(
        start=(today - dt.timedelta(days=days + 1)).date(), end=timezone.localdate()
    )
    return len(conversations)
