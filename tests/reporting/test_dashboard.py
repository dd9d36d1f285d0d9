"""The admin dashboard, its filters, CSV export and drill-down; an agent's own page."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse

from reporting import services
from reporting.models import ConversationFact
from tests.auth import staff_client
from tests.factories import UserFactory, give_role
from tests.reporting import scenario
from tests.reporting.scenario import DAY, NEXT_DAY

URL = "/admin/reporting/reportingsettings/dashboard/"


@pytest.fixture
def built(db):
    s = scenario.build()
    services.recompute_days(start=DAY - dt.timedelta(days=7), end=NEXT_DAY)
    return s


@pytest.fixture
def boss(db):
    return UserFactory(username="sam", is_superuser=True)


def test_dashboard_shows_figures_charts_data_and_agents(built, boss):
    client = staff_client(boss)
    response = client.get(URL, {"start": "2026-03-10", "end": "2026-03-10"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="reporting-data"' in html
    # Full width: no admin navigation sidebar beside the charts; the breadcrumbs lead home.
    assert 'id="nav-sidebar"' not in html and 'href="/admin/">Home</a>' in html
    assert "chart.umd.min.js" in html and "reporting/dashboard.js" in html
    assert "<script>" not in html.replace(
        '<script id="reporting-data" type="application/json">', ""
    )
    headlines = {h["key"]: h for h in response.context["headlines"]}
    assert headlines["chats"]["current"] == "7"
    assert headlines["chats"]["previous"] == "0"  # 2026-03-09 has nothing
    assert headlines["csat"]["current"] == "66.7 %"
    assert [a["agent"] for a in response.context["agents"]] == ["Alice Agent", "Bob Agent"]


def _listed(client, url) -> set[int]:
    response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return {row["conversation"] for row in response.context["rows"]}


def test_drill_down_lists_the_conversations_behind_a_figure(built, boss):
    client = staff_client(boss)
    response = client.get(URL, {"start": "2026-03-10", "end": "2026-03-10"})
    drill = {h["key"]: h["drill"] for h in response.context["headlines"]}
    c = built.conversations
    ids = lambda *keys: {c[k].pk for k in keys}
    assert _listed(client, drill["chats"]) == ids("c1", "c2", "c3", "c4", "c6", "c8", "c9")
    assert _listed(client, drill["missed"]) == ids("c3")
    assert _listed(client, drill["abandoned"]) == ids("c4")
    assert _listed(client, drill["transfers"]) == ids("c2")
    assert _listed(client, drill["csat"]) == ids("c1", "c2", "c6")
    assert _listed(client, drill["tickets"]) == {
        f.conversation_id for f in ConversationFact.objects.filter(day=DAY, tickets__gt=0)
    }
    assert _listed(client, drill["invitation_chats"]) == ids("c6")
    assert _listed(client, drill["qa_average"]) == ids("c1", "c2", "c8")
    assert drill["invitations_sent"] is None  # invitations without a chat have no transcript
    # Each row opens the transcript: the admin's conversation page (where the look is audited).
    listing = client.get(drill["missed"])
    transcript = listing.context["rows"][0]["transcript"]
    assert transcript == reverse("admin:chat_conversation_change", args=[c["c3"].pk])
    assert transcript in listing.content.decode()
    assert client.get(transcript).status_code == 200
    # A row of the agent table drills down to that agent's chats.
    bob = next(a for a in response.context["agents"] if a["agent"] == "Bob Agent")
    assert _listed(client, bob["drill"]) == ids("c2", "c6")
    # The whole list as CSV.
    exported = client.get(drill["chats"] + "&csv=1")
    rows = list(csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert {int(r["conversation"]) for r in rows} == ids("c1", "c2", "c3", "c4", "c6", "c8", "c9")
    assert {r["conversation"]: r["wait_s"] for r in rows}[str(c["c9"].pk)] == "210.0"


def test_drill_down_refuses_an_unknown_figure(built, boss):
    response = staff_client(boss).get(
        URL + "conversations/", {"start": "2026-03-10", "end": "2026-03-10", "figure": "nope"}
    )
    assert response.status_code == 400
    assert "Unknown figure “nope”" in response.content.decode()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "2026-03-10", "end": "2026-03-01"}, "The range runs backwards"),
        ({"start": "2024-01-01", "end": "2026-03-10"}, "at most 400 days"),
        (
            {"start": "2026-03-10", "end": "2026-03-10", "department": "nope"},
            "Unknown department “nope”",
        ),
        ({"start": "not-a-date"}, "Enter a valid date"),
    ],
)
def test_bad_filters_get_a_clear_error(built, boss, params, message):
    response = staff_client(boss).get(URL, params)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_csv_export_of_every_table(built, boss):
    client = staff_client(boss)
    base = {"start": "2026-03-10", "end": "2026-03-10", "department": "billing"}
    summary = list(
        csv.DictReader(io.StringIO(client.get(URL, {**base, "csv": "summary"}).content.decode()))
    )
    assert {r["figure"]: r["current"] for r in summary}["chats"] == "2"
    daily = list(
        csv.DictReader(io.StringIO(client.get(URL, {**base, "csv": "daily"}).content.decode()))
    )
    assert [(r["day"], r["chats"]) for r in daily] == [("2026-03-10", "2")]
    hourly = list(
        csv.DictReader(io.StringIO(client.get(URL, {**base, "csv": "hourly"}).content.decode()))
    )
    assert [r["hour"] for r in hourly if r["chats"] != "0"] == ["11", "23"]
    agents = list(
        csv.DictReader(io.StringIO(client.get(URL, {**base, "csv": "agents"}).content.decode()))
    )
    assert [(r["agent"], r["chats"]) for r in agents] == [("Alice Agent", "1")]


def test_a_supervisor_sees_only_its_departments(built):
    bob_user = give_role(built.bob.user, "Supervisor")  # oversees support only
    client = staff_client(bob_user)
    response = client.get(URL, {"start": "2026-03-10", "end": "2026-03-10"})
    assert {h["key"]: h["current"] for h in response.context["headlines"]}["chats"] == "5"
    refused = client.get(URL, {"start": "2026-03-10", "end": "2026-03-10", "department": "billing"})
    assert refused.status_code == 400
    assert "Unknown department" in refused.content.decode()


def test_agent_sees_own_figures_only(built):
    client = staff_client(built.bob.user)
    response = client.get(reverse("reporting-my-stats"))
    assert response.status_code == 200
    assert "Bob Agent" in response.content.decode()
    assert "Alice Agent" not in response.content.decode()
    assert reverse("reporting-my-stats") in client.get("/agent/").content.decode()


def test_my_stats_needs_login_and_an_agent_profile(db, boss):
    from django.test import Client

    assert Client().get(reverse("reporting-my-stats")).status_code == 302
    assert staff_client(boss).get(reverse("reporting-my-stats")).status_code == 403


def _rollup_reads(ctx) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if "reporting_dailyrollup" in q["sql"]]


def test_figures_are_cached_until_a_recompute_touches_their_days(built, boss):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.reporting.scenario import _conversation, at

    client = staff_client(boss)
    # The previous range of 03-03…03-10 (02-24…03-02) was never computed: cached all the same.
    week = {"start": "2026-03-03", "end": "2026-03-10"}
    first = client.get(URL, week)
    headlines = {h["key"]: h for h in first.context["headlines"]}
    assert (headlines["chats"]["current"], headlines["chats"]["previous"]) == ("7", "0")
    with CaptureQueriesContext(connection) as ctx:
        warm = client.get(URL, week)
    assert warm.status_code == 200
    assert _rollup_reads(ctx) == []  # both ranges from the cache

    # A chat on a day of the never-computed range: not shown until its day is recomputed, then
    # shown at once (the range's version went from "never" to the recompute's).
    _conversation(built.support, created=at(2, "12:00:00"), status="missed", ended=at(2, "12:01:00"))
    stale = {h["key"]: h for h in client.get(URL, week).context["headlines"]}
    assert stale["chats"]["previous"] == "0"
    services.recompute_days(start=dt.date(2026, 3, 2), end=dt.date(2026, 3, 2))
    fresh = {h["key"]: h for h in client.get(URL, week).context["headlines"]}
    assert (fresh["chats"]["current"], fresh["chats"]["previous"]) == ("7", "1")

    # Likewise a recompute of a day of the current range.
    _conversation(built.support, created=at(10, "12:00:00"), status="missed", ended=at(10, "12:01:00"))
    services.recompute_days(start=DAY, end=DAY)
    assert {h["key"]: h for h in client.get(URL, week).context["headlines"]}["chats"]["current"] == "8"
