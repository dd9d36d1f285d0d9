"""Reads of reporting figures, with the access check built in (docs/metrics.md defines them).

Headline sums and averages come from DailyRollup; medians and p90s from ConversationFact,
ranked by the database with ROW_NUMBER() so only the one or two rows at the percentile's
position come back to Python.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Iterator
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import F, QuerySet, Sum, Window
from django.db.models.functions import RowNumber

from compliance import roles
from chat.models import AgentProfile, Department
from reporting.models import (
    AgentOccupancy,
    ConversationFact,
    DailyRollup,
    HourlyVolume,
    InvitationRollup,
)

User = AbstractBaseUser | AnonymousUser


@contextlib.contextmanager
def without_jit() -> Iterator[None]:
    """PostgreSQL's JIT compiles the big reporting statements for seconds on this class of
    hardware and saves nothing on index-driven plans of a few thousand rows: off, for this
    transaction only (SET LOCAL), so the rest of the application keeps the server's setting."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
        yield


def departments_visible_to(user: Any) -> QuerySet[Department]:
    """The one place that says whose figures a user may see.

    The roles decide (compliance.roles): administrators see every department, supervisors the
    departments they oversee, everyone else none here (agents see their own figures on their own
    page, never a department's).
    """
    if roles.is_administrator(user):
        return Department.objects.all()
    return Department.objects.filter(pk__in=roles.supervised_department_ids(user))


def agents_visible_to(user: Any) -> QuerySet[AgentProfile]:
    return AgentProfile.objects.filter(departments__in=departments_visible_to(user)).distinct()


def _seconds(value: dt.timedelta | None) -> float:
    return value.total_seconds() if value is not None else 0.0


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def percentiles(qs: QuerySet, field: str, ps: tuple[float, ...] = (0.5, 0.9)) -> list[float | None]:
    """Linear-interpolated percentiles (as PostgreSQL's percentile_cont) of a duration field, in seconds.

    For n sorted values the p-th percentile sits at position h = (n - 1)·p + 1; the value is
    the one at floor(h) plus the fraction of the step to the one at ceil(h).
    """
    values = qs.filter(**{f"{field}__isnull": False})
    n = values.count()
    if n == 0:
        return [None for _ in ps]
    positions = {}
    for p in ps:
        h = (n - 1) * p + 1
        positions[p] = (h, math.floor(h), math.ceil(h))
    wanted = sorted({pos for _, lo, hi in positions.values() for pos in (lo, hi)})
    ranked = (
        values.annotate(rn=Window(RowNumber(), order_by=[F(field).asc(), F("pk").asc()]))
        .filter(rn__in=wanted)
        .values_list("rn", field)
    )
    at = {rn: _seconds(v) for rn, v in ranked}
    # Rounded to the millisecond: (n - 1)·0.9 is not exact in binary floating point.
    return [round(at[lo] + (h - lo) * (at[hi] - at[lo]), 3) for h, lo, hi in positions.values()]


def percentiles_of_fields(qs: QuerySet, fields: list[str]) -> dict[str, list[float | None]]:
    """Median and p90 of several duration fields: on PostgreSQL one scan with percentile_cont
    (the same definition as `percentiles`), elsewhere ranked field by field."""
    if connection.vendor != "postgresql":
        return {field: percentiles(qs, field) for field in fields}
    try:
        sql, params = qs.values(*fields).query.sql_with_params()
    except EmptyResultSet:  # nothing in scope (e.g. no visible department): no figures
        return {field: [None, None] for field in fields}
    columns = ", ".join(
        f"percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY f.{connection.ops.quote_name(field)})"
        for field in fields
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM ({sql}) f", params)
        row = cursor.fetchone()
    out: dict[str, list[float | None]] = {}
    for field, values in zip(fields, row, strict=True):
        out[field] = (
            [None, None]
            if values is None
            else [None if v is None else round(_seconds(v), 3) for v in values]
        )
    return out


def _scope(
    model: type,
    *,
    user: Any,
    start: dt.date,
    end: dt.date,
    department_ids: list[int] | None,
    agent_id: int | None,
) -> QuerySet:
    per_agent = model is not HourlyVolume and model is not InvitationRollup
    if per_agent and agent_id is not None and AgentProfile.objects.filter(pk=agent_id, user=user).exists():
        # Everyone sees its own figures, in whatever departments it worked (an agent has no
        # department view at all).
        qs = model.objects.filter(day__gte=start, day__lte=end, agent_id=agent_id)
    else:
        qs = model.objects.filter(
            day__gte=start, day__lte=end, department__in=departments_visible_to(user)
        )
    if department_ids:
        qs = qs.filter(department_id__in=department_ids)
    if agent_id is not None and per_agent:
        qs = qs.filter(agent_id=agent_id)
    return qs


def summary(
    *,
    user: Any,
    start: dt.date,
    end: dt.date,
    department_ids: list[int] | None = None,
    agent_id: int | None = None,
) -> dict[str, float | int | None]:
    """Headline figures of the range (see docs/metrics.md for each one)."""
    scope = {
        "user": user,
        "start": start,
        "end": end,
        "department_ids": department_ids,
        "agent_id": agent_id,
    }
    r = _scope(DailyRollup, **scope).aggregate(
        chats=Sum("chats"),
        missed=Sum("missed"),
        abandoned=Sum("abandoned"),
        wait_count=Sum("wait_count"),
        wait_sum=Sum("wait_sum"),
        fr_count=Sum("first_response_count"),
        fr_sum=Sum("first_response_sum"),
        session_count=Sum("session_count"),
        session_sum=Sum("session_sum"),
        handle_count=Sum("handle_count"),
        handle_sum=Sum("handle_sum"),
        ended=Sum("ended"),
        surveys=Sum("surveys"),
        rating_sum=Sum("rating_sum"),
        satisfied=Sum("satisfied"),
        transfers=Sum("transfers"),
        tickets=Sum("tickets"),
        canned_uses=Sum("canned_uses"),
        proactive_chats=Sum("proactive_chats"),
        qa_count=Sum("qa_count"),
        qa_score_sum=Sum("qa_score_sum"),
    )
    inv = _scope(InvitationRollup, **scope).aggregate(
        sent=Sum("sent"), accepted=Sum("accepted"), declined=Sum("declined"), chats=Sum("chats")
    )
    facts = _scope(ConversationFact, **scope)
    out: dict[str, float | int | None] = {
        "chats": r["chats"] or 0,
        "missed": r["missed"] or 0,
        "abandoned": r["abandoned"] or 0,
        "surveys": r["surveys"] or 0,
        "survey_response_rate": _ratio(r["surveys"] or 0, r["ended"] or 0),
        "average_rating": _ratio(r["rating_sum"] or 0, r["surveys"] or 0),
        "csat": _ratio(r["satisfied"] or 0, r["surveys"] or 0),
        "transfers": r["transfers"] or 0,
        "tickets": r["tickets"] or 0,
        "canned_uses": r["canned_uses"] or 0,
        "invitations_sent": inv["sent"] or 0,
        "invitations_accepted": inv["accepted"] or 0,
        "invitations_declined": inv["declined"] or 0,
        "invitation_chats": inv["chats"] or 0,
        # Slot for coaching's QA scores (0 evaluations until coaching fills it).
        "qa_average": _ratio(r["qa_score_sum"] or 0, r["qa_count"] or 0),
    }
    spread = percentiles_of_fields(facts, ["wait", "first_response", "session", "handle"])
    for name, count_key, sum_key, field in (
        ("wait", "wait_count", "wait_sum", "wait"),
        ("first_response", "fr_count", "fr_sum", "first_response"),
        ("session", "session_count", "session_sum", "session"),
        ("handle", "handle_count", "handle_sum", "handle"),
    ):
        out[f"{name}_avg"] = _ratio(_seconds(r[sum_key]), r[count_key] or 0)
        out[f"{name}_median"], out[f"{name}_p90"] = spread[field]
    return out


def daily_series(
    *,
    user: Any,
    start: dt.date,
    end: dt.date,
    department_ids: list[int] | None = None,
    agent_id: int | None = None,
) -> list[dict[str, Any]]:
    """One row per day of the range (days without chats included, as zeros)."""
    rows = {
        row["day"]: row
        for row in _scope(
            DailyRollup,
            user=user,
            start=start,
            end=end,
            department_ids=department_ids,
            agent_id=agent_id,
        )
        .values("day")
        .annotate(
            chats=Sum("chats"),
            missed=Sum("missed"),
            abandoned=Sum("abandoned"),
            wait_sum=Sum("wait_sum"),
            wait_count=Sum("wait_count"),
            surveys=Sum("surveys"),
            satisfied=Sum("satisfied"),
        )
        .order_by("day")
    }
    out = []
    day = start
    while day <= end:
        row = rows.get(day, {})
        out.append(
            {
                "day": day.isoformat(),
                "chats": row.get("chats") or 0,
                "missed": row.get("missed") or 0,
                "abandoned": row.get("abandoned") or 0,
                "wait_avg": _ratio(_seconds(row.get("wait_sum")), row.get("wait_count") or 0),
                "csat": _ratio(row.get("satisfied") or 0, row.get("surveys") or 0),
            }
        )
        day += dt.timedelta(days=1)
    return out


def hourly_volume(
    *, user: Any, start: dt.date, end: dt.date, department_ids: list[int] | None = None
) -> list[int]:
    """Chats by local hour of day (0-23) over the range."""
    counts = dict(
        _scope(
            HourlyVolume,
            user=user,
            start=start,
            end=end,
            department_ids=department_ids,
            agent_id=None,
        )
        .values("hour")
        .annotate(n=Sum("chats"))
        .values_list("hour", "n")
    )
    return [counts.get(h, 0) for h in range(24)]


def agent_table(
    *,
    user: Any,
    start: dt.date,
    end: dt.date,
    department_ids: list[int] | None = None,
    agent_id: int | None = None,
) -> list[dict[str, Any]]:
    """Per agent: chats, handle time, CSAT and occupancy (share of online time in 0/1/2/3+ chats)."""
    agents = agents_visible_to(user)
    if department_ids:
        agents = agents.filter(departments__in=department_ids)
    if agent_id is not None:
        agents = agents.filter(pk=agent_id)
    figures = {
        row["agent_id"]: row
        for row in _scope(
            DailyRollup,
            user=user,
            start=start,
            end=end,
            department_ids=department_ids,
            agent_id=agent_id,
        )
        .filter(agent__isnull=False)
        .values("agent_id")
        .annotate(
            chats=Sum("chats"),
            handle_sum=Sum("handle_sum"),
            handle_count=Sum("handle_count"),
            surveys=Sum("surveys"),
            satisfied=Sum("satisfied"),
            transfers=Sum("transfers"),
        )
        .order_by()
    }
    occupancy = {
        row["agent_id"]: row
        for row in AgentOccupancy.objects.filter(day__gte=start, day__lte=end, agent__in=agents)
        .values("agent_id")
        .annotate(
            online=Sum("online_seconds"),
            s0=Sum("seconds_0"),
            s1=Sum("seconds_1"),
            s2=Sum("seconds_2"),
            s3=Sum("seconds_3plus"),
        )
        .order_by()
    }
    out = []
    for agent in agents.order_by("display_name").only("pk", "display_name"):
        f = figures.get(agent.pk, {})
        o = occupancy.get(agent.pk, {})
        online = o.get("online") or 0
        out.append(
            {
                "agent_id": agent.pk,
                "agent": agent.display_name,
                "chats": f.get("chats") or 0,
                "handle_avg": _ratio(_seconds(f.get("handle_sum")), f.get("handle_count") or 0),
                "csat": _ratio(f.get("satisfied") or 0, f.get("surveys") or 0),
                "transfers": f.get("transfers") or 0,
                "online_seconds": online,
                "occupancy_0": _ratio(o.get("s0") or 0, online),
                "occupancy_1": _ratio(o.get("s1") or 0, online),
                "occupancy_2": _ratio(o.get("s2") or 0, online),
                "occupancy_3plus": _ratio(o.get("s3") or 0, online),
            }
        )
    return out
