"""A hand-built day whose every figure was worked out by hand (see the comments and docs/metrics.md).

The organisation is in Europe/Berlin (UTC+1 in March). Local day D = 2026-03-10 runs from
2026-03-09 23:00Z to 2026-03-10 23:00Z. All times below are UTC.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from chat.models import (
    AgentProfile,
    Assignment,
    Conversation,
    Department,
    Message,
    PresenceInterval,
    ProactiveInvitation,
    SurveyResponse,
    Ticket,
)
from coaching.models import Review
from reporting.models import ReportingSettings
from tests.factories import AgentFactory, DepartmentFactory, UserFactory, VisitorFactory

DAY = dt.date(2026, 3, 10)
NEXT_DAY = dt.date(2026, 3, 11)


def at(day: int, clock: str) -> dt.datetime:
    h, m, s = (int(x) for x in clock.split(":"))
    return dt.datetime(2026, 3, day, h, m, s, tzinfo=dt.UTC)


@dataclass
class Scenario:
    support: Department
    billing: Department
    alice: AgentProfile
    bob: AgentProfile
    conversations: dict[str, Conversation]


def _conversation(
    department,
    *,
    created,
    agent=None,
    status="ended",
    assigned=None,
    first_reply=None,
    ended=None,
    training=False,
):
    return Conversation.objects.create(
        visitor=VisitorFactory(),
        department=department,
        agent=agent,
        status=status,
        created_at=created,
        queued_at=created,
        queue_order_at=created,
        assigned_at=assigned,
        first_agent_reply_at=first_reply,
        ended_at=ended,
        is_training=training,
    )


def _assignment(conversation, agent, *, offered, accepted=None, ended=None, reason="ended"):
    return Assignment.objects.create(
        conversation=conversation,
        agent=agent,
        offered_at=offered,
        accepted_at=accepted,
        ended_at=ended,
        end_reason=reason,
    )


def build() -> Scenario:
    ReportingSettings.objects.update_or_create(pk=1, defaults={"time_zone": "Europe/Berlin"})
    support = DepartmentFactory(name="Patient support", slug="support")
    billing = DepartmentFactory(name="Billing", slug="billing")
    alice = AgentFactory(
        user=UserFactory(username="alice"),
        display_name="Alice Agent",
        departments=[support, billing],
    )
    bob = AgentFactory(
        user=UserFactory(username="bob"), display_name="Bob Agent", departments=[support]
    )
    c: dict[str, Conversation] = {}

    # C1 support, Alice: wait 30 s, first response 30 s, session 600 s, handle 600 s; rating 5,
    # two canned answers, one ticket. Bob declined the offer first (not occupancy).
    c["c1"] = _conversation(
        support,
        created=at(10, "08:00:00"),
        agent=alice,
        assigned=at(10, "08:00:30"),
        first_reply=at(10, "08:01:00"),
        ended=at(10, "08:10:30"),
    )
    _assignment(
        c["c1"], bob, offered=at(10, "08:00:05"), ended=at(10, "08:00:10"), reason="declined"
    )
    _assignment(
        c["c1"],
        alice,
        offered=at(10, "08:00:10"),
        accepted=at(10, "08:00:30"),
        ended=at(10, "08:10:30"),
    )
    for seq, meta in (
        (1, {}),
        (2, {"canned": {"id": 1, "shortcut": "hi", "edited": False}}),
        (3, {"canned": {"id": 2, "shortcut": "bye", "edited": True}}),
    ):
        Message.objects.create(
            conversation=c["c1"],
            seq=seq,
            role="agent",
            body="text",
            meta=meta,
            created_at=at(10, "08:01:00"),
        )
    SurveyResponse.objects.create(conversation=c["c1"], rating=5, submitted_at=at(10, "08:11:00"))
    Ticket.objects.create(
        subject="Follow-up",
        source="chat",
        department=support,
        conversation=c["c1"],
        email="v@example.com",
        created_at=at(10, "08:12:00"),
        updated_at=at(10, "08:12:00"),
    )

    # C2 support: Alice accepts at 09:02:00, transfers to Bob at 09:05:00; Bob accepts 09:05:20,
    # ends 09:20:00. Wait 120, first response 10, session 1080, handle 180 + 880 = 1060; rating 3.
    c["c2"] = _conversation(
        support,
        created=at(10, "09:00:00"),
        agent=bob,
        assigned=at(10, "09:02:00"),
        first_reply=at(10, "09:02:10"),
        ended=at(10, "09:20:00"),
    )
    _assignment(
        c["c2"],
        alice,
        offered=at(10, "09:01:50"),
        accepted=at(10, "09:02:00"),
        ended=at(10, "09:05:00"),
        reason="transferred",
    )
    _assignment(
        c["c2"],
        bob,
        offered=at(10, "09:05:00"),
        accepted=at(10, "09:05:20"),
        ended=at(10, "09:20:00"),
    )
    SurveyResponse.objects.create(conversation=c["c2"], rating=3, submitted_at=at(10, "09:21:00"))

    # C3 support: missed. C4 billing: abandoned.
    c["c3"] = _conversation(
        support, created=at(10, "10:00:00"), status="missed", ended=at(10, "10:05:00")
    )
    c["c4"] = _conversation(
        billing, created=at(10, "10:30:00"), status="abandoned", ended=at(10, "10:31:00")
    )

    # C5: a training chat of Alice overlapping C1 — excluded from everything, occupancy included.
    c["c5"] = _conversation(
        support,
        created=at(10, "08:04:00"),
        agent=alice,
        assigned=at(10, "08:05:00"),
        first_reply=at(10, "08:05:10"),
        ended=at(10, "08:08:00"),
        training=True,
    )
    _assignment(
        c["c5"],
        alice,
        offered=at(10, "08:04:50"),
        accepted=at(10, "08:05:00"),
        ended=at(10, "08:08:00"),
    )

    # C6 support, created 23:30Z on the 9th = 00:30 local on the 10th: day D, not the UTC date.
    # Bob: wait 40, first response 20, session 600, handle 600; rating 4; came from invitation I1.
    c["c6"] = _conversation(
        support,
        created=at(9, "23:30:00"),
        agent=bob,
        assigned=at(9, "23:30:40"),
        first_reply=at(9, "23:31:00"),
        ended=at(9, "23:40:40"),
    )
    _assignment(
        c["c6"], bob, offered=at(9, "23:30:30"), accepted=at(9, "23:30:40"), ended=at(9, "23:40:40")
    )
    SurveyResponse.objects.create(conversation=c["c6"], rating=4, submitted_at=at(12, "09:00:00"))

    # C7 support, created 23:10Z on the 10th = 00:10 local on the 11th: next day, missed.
    c["c7"] = _conversation(
        support, created=at(10, "23:10:00"), status="missed", ended=at(10, "23:15:00")
    )

    # C8 billing, Alice, 23:50 local, runs past midnight: wait 300, first response 60,
    # session 600, handle 600.
    c["c8"] = _conversation(
        billing,
        created=at(10, "22:50:00"),
        agent=alice,
        assigned=at(10, "22:55:00"),
        first_reply=at(10, "22:56:00"),
        ended=at(10, "23:05:00"),
    )
    _assignment(
        c["c8"],
        alice,
        offered=at(10, "22:54:00"),
        accepted=at(10, "22:55:00"),
        ended=at(10, "23:05:00"),
    )

    # C9 support, Alice, overlaps C1 (two chats at once): wait 210, first response 30,
    # session 120, handle 120.
    c["c9"] = _conversation(
        support,
        created=at(10, "08:02:00"),
        agent=alice,
        assigned=at(10, "08:05:30"),
        first_reply=at(10, "08:06:00"),
        ended=at(10, "08:07:30"),
    )
    _assignment(
        c["c9"],
        alice,
        offered=at(10, "08:05:20"),
        accepted=at(10, "08:05:30"),
        ended=at(10, "08:07:30"),
    )

    # Invitations (support): on day D one accepted (→ C6), one declined, one unanswered;
    # one sent on the next local day.
    visitor = VisitorFactory()
    ProactiveInvitation.objects.create(
        visitor=visitor,
        department=support,
        status="accepted",
        sent_at=at(9, "23:20:00"),
        responded_at=at(9, "23:29:00"),
        conversation=c["c6"],
    )
    ProactiveInvitation.objects.create(
        visitor=visitor,
        department=support,
        status="declined",
        sent_at=at(10, "12:00:00"),
        responded_at=at(10, "12:00:30"),
    )
    ProactiveInvitation.objects.create(
        visitor=visitor, department=support, status="sent", sent_at=at(10, "13:00:00")
    )
    ProactiveInvitation.objects.create(
        visitor=visitor, department=support, status="sent", sent_at=at(10, "23:30:00")
    )

    # Presence. Alice: online 07:50-09:03, away 09:03-09:04, online 09:04 until 23:30 (past
    # local midnight). Bob: online from 22:00Z on the 9th (the previous local day) to 10:00Z.
    PresenceInterval.objects.create(
        agent=alice, status="online", started_at=at(10, "07:50:00"), ended_at=at(10, "09:03:00")
    )
    PresenceInterval.objects.create(
        agent=alice, status="away", started_at=at(10, "09:03:00"), ended_at=at(10, "09:04:00")
    )
    PresenceInterval.objects.create(
        agent=alice, status="online", started_at=at(10, "09:04:00"), ended_at=at(10, "23:30:00")
    )
    PresenceInterval.objects.create(
        agent=alice, status="offline", started_at=at(10, "23:30:00"), ended_at=None
    )
    PresenceInterval.objects.create(
        agent=bob, status="online", started_at=at(9, "22:00:00"), ended_at=at(10, "10:00:00")
    )

    # QA (coaching's scored reviews, made on the 11th), on the day of the reviewed chat: C1 80
    # (Alice), C2 60 and 76 (two reviews of Bob's chat), C8 90 (Alice; 23:50 local, day D), C9
    # not scored yet (not counted), C5 training (excluded). Day D: 4 reviews, average
    # (80 + 60 + 76 + 90) / 4 = 76.5; Alice 85, Bob 68.
    reviewer = UserFactory(username="qa-reviewer")
    for key, agent, score in (
        ("c1", alice, "80.00"),
        ("c2", bob, "60.00"),
        ("c2", bob, "76.00"),
        ("c9", alice, None),
        ("c5", alice, "10.00"),
        ("c8", alice, "90.00"),
    ):
        Review.objects.create(
            conversation=c[key],
            reviewer=reviewer,
            agent=agent,
            score=None if score is None else Decimal(score),
            created_at=at(11, "10:00:00"),
        )
    return Scenario(support=support, billing=billing, alice=alice, bob=bob, conversations=c)
