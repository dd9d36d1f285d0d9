"""Every figure of the hand-built day (tests/reporting/scenario.py), asserted exactly, both modes."""

from __future__ import annotations

import datetime as dt

import pytest

from chat.models import SurveyResponse
from reporting import selectors, services
from reporting.models import (
    AgentOccupancy,
    ConversationFact,
    DailyRollup,
    HourlyVolume,
    InvitationRollup,
)
from tests.factories import UserFactory, give_role
from tests.reporting import scenario
from tests.reporting.scenario import DAY, NEXT_DAY

NOW = dt.datetime(2026, 3, 12, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def built(db):
    s = scenario.build()
    services.recompute_days(start=DAY - dt.timedelta(days=1), end=NEXT_DAY, now=NOW)
    return s


@pytest.fixture
def boss(db):
    return UserFactory(username="sam", is_superuser=True)


def test_headline_figures_of_the_day(built, boss):
    s = selectors.summary(user=boss, start=DAY, end=DAY)
    assert s == {
        "chats": 7,  # C1 C2 C3 C4 C6 C8 C9 (C5 training, C7 next local day)
        "missed": 1,
        "abandoned": 1,
        "wait_avg": 140.0,  # (30 + 120 + 40 + 300 + 210) / 5
        "wait_median": 120.0,
        "wait_p90": 264.0,  # h = 4.6: 210 + 0.6 × 90
        "first_response_avg": 30.0,  # (30 + 10 + 20 + 60 + 30) / 5
        "first_response_median": 30.0,
        "first_response_p90": 48.0,  # 30 + 0.6 × 30
        "session_avg": 600.0,  # (600 + 1080 + 600 + 600 + 120) / 5
        "session_median": 600.0,
        "session_p90": 888.0,  # 600 + 0.6 × 480
        "handle_avg": 596.0,  # (600 + 1060 + 600 + 600 + 120) / 5
        "handle_median": 600.0,
        "handle_p90": 876.0,  # 600 + 0.6 × 460
        "surveys": 3,
        "survey_response_rate": 0.6,  # 3 surveys of 5 accepted, ended chats
        "average_rating": 4.0,  # (5 + 3 + 4) / 3
        "csat": 2 / 3,  # 5 and 4 of 5, 3, 4
        "transfers": 1,
        "tickets": 1,
        "canned_uses": 2,
        "invitations_sent": 3,
        "invitations_accepted": 1,
        "invitations_declined": 1,
        "invitation_chats": 1,
        "qa_reviews": 4,  # C1, C2 twice, C8 (C9 unscored, C5 training)
        "qa_average": 76.5,  # (80 + 60 + 76 + 90) / 4
    }


def test_volume_by_department_agent_and_hour(built, boss):
    rows = {
        (r.department.slug, r.agent.display_name if r.agent else None): r.chats
        for r in DailyRollup.objects.filter(day=DAY).select_related("department", "agent")
    }
    assert rows == {
        ("support", "Alice Agent"): 2,  # C1, C9
        ("support", "Bob Agent"): 2,  # C2 (transferred to Bob), C6
        ("support", None): 1,  # C3
        ("billing", None): 1,  # C4
        ("billing", "Alice Agent"): 1,  # C8
    }
    hours = selectors.hourly_volume(user=boss, start=DAY, end=DAY)
    expected = [0] * 24
    expected[0] = 1  # C6 00:30 local
    expected[9] = 2  # C1, C9
    expected[10] = 1  # C2
    expected[11] = 2  # C3, C4
    expected[23] = 1  # C8
    assert hours == expected
    assert (
        selectors.summary(user=boss, start=DAY, end=DAY, department_ids=[built.billing.pk])["chats"]
        == 2
    )
    assert selectors.summary(user=boss, start=NEXT_DAY, end=NEXT_DAY)["missed"] == 1  # C7


def test_occupancy_exact_to_the_second_across_midnight(built):
    got = {
        (o.agent.display_name, o.day): (
            o.online_seconds,
            o.seconds_0,
            o.seconds_1,
            o.seconds_2,
            o.seconds_3plus,
        )
        for o in AgentOccupancy.objects.select_related("agent")
    }
    # Alice on D: online 07:50-09:03 and 09:04-23:00 (local midnight) = 4380 + 50160 s.
    # 1 chat: 08:00:30-08:05:30, 08:07:30-08:10:30, 09:02-09:03, 09:04-09:05, 22:55-23:00;
    # 2 chats: 08:05:30-08:07:30 (C1 + C9; the training chat C5 is not counted).
    assert got[("Alice Agent", DAY)] == (54540, 53520, 900, 120, 0)
    # Alice on the next day: 23:00-23:30 online, C8 until 23:05.
    assert got[("Alice Agent", NEXT_DAY)] == (1800, 1500, 300, 0, 0)
    # Bob on D: online 23:00Z (local midnight) to 10:00Z; C6 600 s, C2 880 s after the transfer.
    assert got[("Bob Agent", DAY)] == (39600, 38120, 1480, 0, 0)
    # Bob on the previous local day: 22:00-23:00Z online, no chats.
    assert got[("Bob Agent", DAY - dt.timedelta(days=1))] == (3600, 3600, 0, 0, 0)


def test_agent_table(built, boss):
    table = {row["agent"]: row for row in selectors.agent_table(user=boss, start=DAY, end=DAY)}
    assert table["Alice Agent"]["chats"] == 3
    assert table["Alice Agent"]["handle_avg"] == (600 + 600 + 120) / 3
    assert table["Alice Agent"]["csat"] == 1.0  # C1 rated 5
    assert table["Alice Agent"]["occupancy_2"] == 120 / 54540
    assert table["Bob Agent"]["chats"] == 2
    assert table["Bob Agent"]["csat"] == 0.5  # C2 rated 3, C6 rated 4
    assert table["Bob Agent"]["occupancy_1"] == 1480 / 39600
    assert (table["Alice Agent"]["qa_reviews"], table["Alice Agent"]["qa_average"]) == (2, 85.0)
    assert (table["Bob Agent"]["qa_reviews"], table["Bob Agent"]["qa_average"]) == (2, 68.0)


def _snapshot():
    return {
        "facts": sorted(ConversationFact.objects.values_list(), key=repr),
        "rollups": sorted((tuple(r[1:]) for r in DailyRollup.objects.values_list()), key=repr),
        "hourly": sorted((tuple(r[1:]) for r in HourlyVolume.objects.values_list()), key=repr),
        "invitations": sorted(
            (tuple(r[1:]) for r in InvitationRollup.objects.values_list()), key=repr
        ),
        "occupancy": sorted((tuple(r[1:]) for r in AgentOccupancy.objects.values_list()), key=repr),
    }


def test_recomputing_gives_identical_rows(built):
    before = _snapshot()
    services.recompute_days(start=DAY - dt.timedelta(days=1), end=NEXT_DAY, now=NOW)
    services.recompute_days(start=DAY, end=DAY, now=NOW)
    assert _snapshot() == before
    assert before["rollups"]


def test_late_survey_updates_the_conversations_own_day(built, boss):
    c9 = built.conversations["c9"]
    SurveyResponse.objects.create(
        conversation=c9, rating=2, submitted_at=dt.datetime(2026, 3, 20, tzinfo=dt.UTC)
    )
    services.recompute_conversation_day(conversation_id=c9.pk)
    s = selectors.summary(user=boss, start=DAY, end=DAY)
    assert (s["surveys"], s["average_rating"], s["csat"]) == (4, 3.5, 0.5)


def test_training_chats_are_excluded(built):
    assert not ConversationFact.objects.filter(conversation=built.conversations["c5"]).exists()


def test_an_agent_sees_no_department_figures(built):
    # Agents see their own figures on their own page, never a department's.
    assert selectors.summary(user=built.bob.user, start=DAY, end=DAY)["chats"] == 0


def test_supervisors_see_only_their_departments(built):
    bob_user = give_role(built.bob.user, "Supervisor")
    s = selectors.summary(user=bob_user, start=DAY, end=DAY)
    assert s["chats"] == 5  # support only: C1 C2 C3 C6 C9
    assert [r["agent"] for r in selectors.agent_table(user=bob_user, start=DAY, end=DAY)] == [
        "Alice Agent",
        "Bob Agent",
    ]
