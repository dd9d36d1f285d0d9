"""Reads of reporting figures, with the access check built in (docs/metrics.md defines them).

Headline sums and averages come from DailyRollup; medians and p90s from ConversationFact,
ranked by the database with ROW_NUMBER() so only the one or two rows at the percentile's
position come back to Python.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import F, Max, Q, QuerySet, Sum, Window
from django.db.models.functions import RowNumber

from chat.models import AgentProfile, Department
from compliance import roles
from reporting.models import (
    AgentOccupancy,
    ConversationFact,
    DailyRollup,
    HourlyVolume,
    InvitationRollup,
    ReportingDay,
)

User = AbstractBaseUser | AnonymousUser


@contextlib.contextmanager
def tuned(*, write: bool = False) -> Iterator[None]:
    """A transaction with PostgreSQL settings for reporting's statements (SET LOCAL: this
    transaction only, the rest of the application keeps the server's settings).

    - jit off: the JIT compiled the big statements for seconds and saved nothing;
    - work_mem 64 MB: the sorts of a year's percentiles and the hash joins of a recompute stay in
      memory instead of spilling to temporary files (the server default is 4 MB);
    - for a recompute (write=True), synchronous_commit off: its rows are derived and rebuilt by
      the next recompute, so the commit need not wait for the WAL flush (it was seconds of a
      year's recompute). A crash can lose at most that last recompute, never chat data.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true)"
                    + (", set_config('synchronous_commit', 'off', true)" if write else "")
                )
        yield


without_jit = tuned  # the earlier name


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


# --- Scope and cache ----------------------------------------------------------------------

CACHE_SECONDS = 600  # a safety net only: entries are keyed by the data's version


@dataclass(frozen=True)
class Scope:
    """Whose rows a read covers, resolved once from the user's access and the filters.

    `departments` filters the per-agent tables (None: no department restriction, for an agent's
    own figures); `department_level` filters the department-only tables (hourly volume,
    invitations); `agent_id` filters the per-agent tables.
    """

    departments: tuple[int, ...] | None
    department_level: tuple[int, ...]
    agent_id: int | None


def resolve_scope(
    *, user: Any, department_ids: list[int] | None, agent_id: int | None
) -> Scope:
    visible = tuple(sorted(departments_visible_to(user).values_list("pk", flat=True)))
    wanted = set(department_ids) if department_ids else None

    def narrowed(ids: tuple[int, ...]) -> tuple[int, ...]:
        return ids if wanted is None else tuple(i for i in ids if i in wanted)

    own = (
        agent_id is not None
        and AgentProfile.objects.filter(pk=agent_id, user_id=getattr(user, "pk", None)).exists()
    )
    if own:
        # Everyone sees its own figures, in whatever departments it worked (an agent has no
        # department view at all).
        departments = None if wanted is None else tuple(sorted(wanted))
    else:
        departments = narrowed(visible)
    return Scope(departments=departments, department_level=narrowed(visible), agent_id=agent_id)


NEVER_COMPUTED = 0  # no day ever has it: a recompute raises the counter before it uses it


def data_versions(ranges: list[tuple[dt.date, dt.date]]) -> list[int]:
    """For each range, the highest version among its days (NEVER_COMPUTED when no day of it was
    ever computed), in one query. A never-computed range (the previous year on a new install)
    is cached too: the first recompute of any of its days raises its version past 0."""
    lo = min(r[0] for r in ranges)
    hi = max(r[1] for r in ranges)
    found = ReportingDay.objects.filter(day__gte=lo, day__lte=hi).aggregate(
        **{
            f"v{i}": Max("version", filter=Q(day__gte=start, day__lte=end))
            for i, (start, end) in enumerate(ranges)
        }
    )
    return [found[f"v{i}"] or NEVER_COMPUTED for i in range(len(ranges))]


def data_version(*, start: dt.date, end: dt.date) -> int:
    return data_versions([(start, end)])[0]


def _key(name: Any, *, scope: Scope, start: dt.date, end: dt.date, version: int) -> str:
    raw = repr((name, start.isoformat(), end.isoformat(), scope, version))
    return "reporting:" + hashlib.sha256(raw.encode()).hexdigest()


def _compute(compute: Any) -> Any:
    # Only a cache miss reads the rollups: only then is a tuned transaction worth its round trips.
    with tuned():
        return compute()


def _cached(name: Any, *, scope: Scope, start: dt.date, end: dt.date, compute: Any) -> Any:
    """compute(), remembered under the range's data version: figures of a range whose days were
    not recomputed since are served from the cache; a recompute of any of its days gives a new
    version, hence a new key (docs/metrics.md, "How it is computed")."""
    version = data_version(start=start, end=end)
    key = _key(name, scope=scope, start=start, end=end, version=version)
    hit = cache.get(key)
    if hit is not None:
        return hit
    value = _compute(compute)
    cache.set(key, value, CACHE_SECONDS)
    return value


def _scope(model: type, *, scope: Scope, start: dt.date, end: dt.date) -> QuerySet:
    qs = model.objects.filter(day__gte=start, day__lte=end)
    if model is HourlyVolume or model is InvitationRollup:
        return qs.filter(department_id__in=scope.department_level)
    if scope.departments is not None:
        qs = qs.filter(department_id__in=scope.departments)
    if scope.agent_id is not None:
        qs = qs.filter(agent_id=scope.agent_id)
    return qs


def _scope_of(
    scope: Scope | None, *, user: Any, department_ids: list[int] | None, agent_id: int | None
) -> Scope:
    return scope or resolve_scope(user=user, department_ids=department_ids, agent_id=agent_id)


def summary(
    *,
    user: Any = None,
    start: dt.date,
    end: dt.date,
    department_ids: list[int] | None = None,
    agent_id: int | None = None,
    scope: Scope | None = None,
) -> dict[str, float | int | None]:
    """Headline figures of the range (see docs/metrics.md for each one)."""
    scope = _scope_of(scope, user=user, department_ids=department_ids, agent_id=agent_id)
    return _cached(
        "summary",
        scope=scope,
        start=start,
        end=end,
        compute=lambda: _summary(scope=scope, start=start, end=end),
    )


def _summary(*, scope: Scope, start: dt.date, end: dt.date) -> dict[str, float | int | None]:
    where = {"scope": scope, "start": start, "end": end}
    r = _scope(DailyRollup, **where).aggregate(
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
    inv = _scope(InvitationRollup, **where).aggregate(
        sent=Sum("sent"), accepted=Sum("accepted"), declined=Sum("declined"), chats=Sum("chats")
    )
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
        "qa_reviews": r["qa_count"] or 0,
        "qa_average": _ratio(r["qa_score_sum"] or 0, r["qa_count"] or 0),
    }
    facts = _scope(ConversationFact, **where)
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
    user: Any = None,
    start: dt.date,
    end: dt.date,
    department_ids: list[int] | None = None,
    agent_id: int | None = None,
    scope: Scope | None = None,
) -> list[dict[str, Any]]:
    """One row per day of the range (days without chats included, as zeros)."""
    scope = _scope_of(scope, user=user, department_ids=department_ids, agent_id=agent_id)
    return _cached(
        "daily",
        scope=scope,
        start=start,
        end=end,
        compute=lambda: _daily_series(scope=scope, start=start, end=end),
    )


def _daily_series(*, scope: Scope, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    rows = {
        row["day"]: row
        for row in _scope(DailyRollup, scope=scope, start=start, end=end)
        .values("day")
        .annotate(
            chats=Sum("chats"),
            missed=Sum("missed"),
            abandoned=Sum("abandoned"),
            wait_sum=Sum("wait_sum"),
            wait_count=Sum("wait_count"),
            handle_sum=Sum("handle_sum"),
            handle_count=Sum("handle_count"),
            surveys=Sum("surveys"),
            satisfied=Sum("satisfied"),
            transfers=Sum("transfers"),
            qa_count=Sum("qa_count"),
            qa_score_sum=Sum("qa_score_sum"),
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
                "handle_avg": _ratio(
                    _seconds(row.get("handle_sum")), row.get("handle_count") or 0
                ),
                "surveys": row.get("surveys") or 0,
                "csat": _ratio(row.get("satisfied") or 0, row.get("surveys") or 0),
                "transfers": row.get("transfers") or 0,
                "qa_reviews": row.get("qa_count") or 0,
                "qa_average": _ratio(row.get("qa_score_sum") or 0, row.get("qa_count") or 0),
            }
        )
        day += dt.timedelta(days=1)
    return out


def hourly_volume(
    *,
    user: Any = None,
    start: dt.date,
    end: dt.date,
    department_ids: list[int] | None = None,
    scope: Scope | None = None,
) -> list[int]:
    """Chats by local hour of day (0-23) over the range."""
    scope = _scope_of(scope, user=user, department_ids=department_ids, agent_id=None)
    return _cached(
        "hourly",
        scope=scope,
        start=start,
        end=end,
        compute=lambda: _hourly(scope=scope, start=start, end=end),
    )


def _hourly(*, scope: Scope, start: dt.date, end: dt.date) -> list[int]:
    counts = dict(
        _scope(HourlyVolume, scope=scope, start=start, end=end)
        .values("hour")
        .annotate(n=Sum("chats"))
        .values_list("hour", "n")
    )
    return [counts.get(h, 0) for h in range(24)]


def _agent_rows(scope: Scope) -> list[tuple[int, str]]:
    if scope.departments is None:  # an agent's own figures
        agents = AgentProfile.objects.filter(pk=scope.agent_id)
    else:
        agents = AgentProfile.objects.filter(departments__in=scope.departments).distinct()
        if scope.agent_id is not None:
            agents = agents.filter(pk=scope.agent_id)
    return list(agents.order_by("display_name").values_list("pk", "display_name"))


def agent_table(
    *,
    user: Any = None,
    start: dt.date,
    end: dt.date,
    department_ids: list[int] | None = None,
    agent_id: int | None = None,
    scope: Scope | None = None,
) -> list[dict[str, Any]]:
    """Per agent: chats, handle time, CSAT, QA score and occupancy (share of online time in
    0/1/2/3+ chats). The agents listed are read fresh; their figures may come from the cache."""
    scope = _scope_of(scope, user=user, department_ids=department_ids, agent_id=agent_id)
    agent_rows = _agent_rows(scope)
    ids = [pk for pk, _ in agent_rows]
    figures = _cached(
        ("agents", tuple(ids)),
        scope=scope,
        start=start,
        end=end,
        compute=lambda: _agent_figures(scope=scope, start=start, end=end, agent_ids=ids),
    )
    return _agent_table_rows(agent_rows, figures)


def _agent_table_rows(
    agent_rows: list[tuple[int, str]],
    figures: tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]],
) -> list[dict[str, Any]]:
    per_agent, occupancy = figures
    out = []
    for pk, name in agent_rows:
        f = per_agent.get(pk, {})
        o = occupancy.get(pk, {})
        online = o.get("online") or 0
        out.append(
            {
                "agent_id": pk,
                "agent": name,
                "chats": f.get("chats") or 0,
                "handle_avg": _ratio(_seconds(f.get("handle_sum")), f.get("handle_count") or 0),
                "surveys": f.get("surveys") or 0,
                "csat": _ratio(f.get("satisfied") or 0, f.get("surveys") or 0),
                "transfers": f.get("transfers") or 0,
                "qa_reviews": f.get("qa_count") or 0,
                "qa_average": _ratio(f.get("qa_score_sum") or 0, f.get("qa_count") or 0),
                "online_seconds": online,
                "occupancy_0": _ratio(o.get("s0") or 0, online),
                "occupancy_1": _ratio(o.get("s1") or 0, online),
                "occupancy_2": _ratio(o.get("s2") or 0, online),
                "occupancy_3plus": _ratio(o.get("s3") or 0, online),
            }
        )
    return out


def dashboard(
    *, scope: Scope, start: dt.date, end: dt.date, previous: tuple[dt.date, dt.date]
) -> dict[str, Any]:
    """Everything one dashboard page shows, with one version query and one cache round trip
    when nothing changed: headline figures of the range and of the previous one, the daily
    series, hour-of-day volume and the agent table."""
    agent_rows = _agent_rows(scope)
    ids = [pk for pk, _ in agent_rows]
    p_start, p_end = previous
    parts = {
        "current": ("summary", start, end, lambda: _summary(scope=scope, start=start, end=end)),
        "previous": (
            "summary",
            p_start,
            p_end,
            lambda: _summary(scope=scope, start=p_start, end=p_end),
        ),
        "daily": ("daily", start, end, lambda: _daily_series(scope=scope, start=start, end=end)),
        "hourly": ("hourly", start, end, lambda: _hourly(scope=scope, start=start, end=end)),
        "agents": (
            ("agents", tuple(ids)),
            start,
            end,
            lambda: _agent_figures(scope=scope, start=start, end=end, agent_ids=ids),
        ),
    }
    current_v, previous_v = data_versions([(start, end), previous])
    keys = {
        part: _key(name, scope=scope, start=a, end=b, version=previous_v if part == "previous" else current_v)
        for part, (name, a, b, _) in parts.items()
    }
    hits = cache.get_many(list(keys.values()))
    out = {part: hits[key] for part, key in keys.items() if key in hits}
    missing = [part for part in parts if part not in out]
    if missing:
        with tuned():
            for part in missing:
                out[part] = parts[part][3]()
        cache.set_many({keys[p]: out[p] for p in missing}, CACHE_SECONDS)
    out["agents"] = _agent_table_rows(agent_rows, out["agents"])
    return out


def _agent_figures(
    *, scope: Scope, start: dt.date, end: dt.date, agent_ids: list[int]
) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    figures = {
        row["agent_id"]: row
        for row in _scope(DailyRollup, scope=scope, start=start, end=end)
        .filter(agent__isnull=False)
        .values("agent_id")
        .annotate(
            chats=Sum("chats"),
            handle_sum=Sum("handle_sum"),
            handle_count=Sum("handle_count"),
            surveys=Sum("surveys"),
            satisfied=Sum("satisfied"),
            transfers=Sum("transfers"),
            qa_count=Sum("qa_count"),
            qa_score_sum=Sum("qa_score_sum"),
        )
        .order_by()
    }
    occupancy = {
        row["agent_id"]: row
        for row in AgentOccupancy.objects.filter(
            day__gte=start, day__lte=end, agent_id__in=agent_ids
        )
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
    return figures, occupancy


# --- Drill-down -----------------------------------------------------------------------------

# The conversations behind each figure (docs/metrics.md): the filter on ConversationFact.
DRILL_FIGURES = {
    "chats": "All chats",
    "missed": "Missed chats",
    "abandoned": "Abandoned chats",
    "wait": "Chats an agent accepted (wait time)",
    "first_response": "Chats with an agent reply (first response)",
    "session": "Accepted chats that ended (session length)",
    "handle": "Chats with handle time",
    "surveys": "Chats with a survey",
    "satisfied": "Chats rated 4 or 5",
    "transfers": "Transferred chats",
    "tickets": "Chats that led to a ticket",
    "canned": "Chats with canned responses",
    "proactive": "Chats from proactive invitations",
    "qa": "Chats with a QA score",
}
_DRILL_FILTERS = {
    "chats": Q(),
    "missed": Q(status="missed"),
    "abandoned": Q(status="abandoned"),
    "wait": Q(wait__isnull=False),
    "first_response": Q(first_response__isnull=False),
    "session": Q(session__isnull=False),
    "handle": Q(handle__isnull=False),
    "surveys": Q(rating__isnull=False),
    "satisfied": Q(rating__gte=4),
    "transfers": Q(transfers__gt=0),
    "tickets": Q(tickets__gt=0),
    "canned": Q(canned_uses__gt=0),
    "proactive": Q(proactive=True),
    "qa": Q(qa_count__gt=0),
}


def drilldown(*, scope: Scope, start: dt.date, end: dt.date, figure: str) -> QuerySet:
    """The facts behind `figure` in the scope, newest first, with what a listing shows."""
    return (
        _scope(ConversationFact, scope=scope, start=start, end=end)
        .filter(_DRILL_FILTERS[figure])
        .annotate(
            created_at=F("conversation__created_at"),
            department_name=F("department__name"),
            agent_name=F("agent__display_name"),
        )
        .order_by("-conversation__created_at", "-conversation_id")
    )
