"""Recomputing the reporting tables for a range of local days (writes only; reads in selectors).

Everything is aggregated by the database: one INSERT … SELECT per table builds the rows of a
whole range from chat's tables, so recomputing 100,000 conversations takes seconds, not a Python
loop over each row. Recomputing deletes the range's rows and rebuilds them in one transaction:
running it twice gives identical rows, and a late event (a survey days later) is picked up by
recomputing the conversation's own day.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from django.apps import apps
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    Case,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Max,
    Q,
    QuerySet,
    Sum,
    When,
)
from django.db.models.functions import Coalesce, ExtractHour, TruncDate
from django.utils import timezone

from chat.models import (
    Assignment,
    Conversation,
    Message,
    ProactiveInvitation,
    SurveyResponse,
    Ticket,
)
from reporting.models import (
    AgentOccupancy,
    ConversationFact,
    DailyRollup,
    HourlyVolume,
    InvitationRollup,
    ReportingDay,
    ReportingSettings,
)
from reporting.selectors import tuned


def local_day_bounds(
    *, start: dt.date, end: dt.date, tz: zoneinfo.ZoneInfo
) -> tuple[dt.datetime, dt.datetime]:
    """UTC instants of local midnight before `start` and after `end` (both days included)."""
    lo = dt.datetime.combine(start, dt.time.min, tzinfo=tz).astimezone(dt.UTC)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz).astimezone(dt.UTC)
    return lo, hi


def local_day_of(*, at: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.date:
    return at.astimezone(tz).date()


def _duration(later: str, earlier: str) -> ExpressionWrapper:
    return ExpressionWrapper(F(later) - F(earlier), output_field=DurationField())


def _facts_source(*, lo: dt.datetime, hi: dt.datetime, tz: zoneinfo.ZoneInfo) -> QuerySet:
    """The conversation's own columns; everything counted from other tables is joined in."""
    return (
        Conversation.objects.filter(is_training=False, created_at__gte=lo, created_at__lt=hi)
        .annotate(
            f_id=F("pk"),
            f_day=TruncDate("created_at", tzinfo=tz),
            f_hour=ExtractHour("created_at", tzinfo=tz),
            f_department=F("department_id"),
            f_agent=F("agent_id"),
            f_status=F("status"),
            f_wait=_duration("assigned_at", "queued_at"),
            f_first_response=_duration("first_agent_reply_at", "assigned_at"),
            # Session length exists once the chat has ended.
            f_session=Case(
                When(status=Conversation.Status.ENDED, then=_duration("ended_at", "assigned_at")),
                output_field=DurationField(),
            ),
        )
        .values(
            "f_id",
            "f_day",
            "f_hour",
            "f_department",
            "f_agent",
            "f_status",
            "f_wait",
            "f_first_response",
            "f_session",
        )
        .order_by()
    )


def _per_conversation(*, lo: dt.datetime, hi: dt.datetime) -> dict[str, QuerySet]:
    """Grouped per-conversation counts of the range, each one scan of its table (joined to the
    range's conversations), instead of one correlated subquery per conversation and table."""
    in_range = {
        "conversation__created_at__gte": lo,
        "conversation__created_at__lt": hi,
        "conversation__is_training": False,
    }

    def grouped(qs: QuerySet, **aggregates: Any) -> QuerySet:
        return qs.filter(**in_range).values("conversation_id").annotate(**aggregates).order_by()

    parts = {
        "a": grouped(
            Assignment.objects.all(),
            handle=Sum(
                _duration("ended_at", "accepted_at"),
                filter=Q(accepted_at__isnull=False, ended_at__isnull=False),
            ),
            transfers=Count("pk", filter=Q(end_reason="transferred")),
        ),
        # Messages: only those carrying a canned-response marker; on PostgreSQL a partial index
        # (migration 0003) holds exactly those, so a million plain messages are never read.
        "m": grouped(Message.objects.filter(meta__has_key="canned"), n=Count("pk")),
        "t": grouped(Ticket.objects.all(), n=Count("pk")),
        "s": grouped(SurveyResponse.objects.all(), rating=Max("rating")),
        "i": grouped(ProactiveInvitation.objects.all(), n=Count("pk")),
    }
    if apps.is_installed("coaching"):
        from coaching.models import Review

        # Coaching's QA scores: every scored review of the chat (docs/metrics.md, "QA score").
        parts["q"] = grouped(
            Review.objects.filter(score__isnull=False), n=Count("pk"), total=Sum("score")
        )
    return parts


def _insert_facts(*, lo: dt.datetime, hi: dt.datetime, tz: zoneinfo.ZoneInfo) -> None:
    """One INSERT … SELECT: the range's conversations LEFT JOINed to their grouped counts."""
    base_sql, params = _facts_source(lo=lo, hi=hi, tz=tz).query.sql_with_params()
    params = list(params)
    joins = []
    parts = _per_conversation(lo=lo, hi=hi)
    for alias, qs in parts.items():
        try:
            sql, p = qs.query.sql_with_params()
        except EmptyResultSet:  # pragma: no cover - the filters above always match something
            continue
        joins.append(f"LEFT JOIN ({sql}) {alias} ON {alias}.conversation_id = c.f_id")
        params.extend(p)
    qa = "q" in parts
    table = connection.ops.quote_name(ConversationFact._meta.db_table)
    columns = [
        "conversation_id", "day", "hour", "department_id", "agent_id", "status", "wait",
        "first_response", "session", "handle", "transfers", "canned_uses", "tickets", "rating",
        "proactive", "qa_count", "qa_score_sum",
    ]  # fmt: skip
    select = [
        "c.f_id", "c.f_day", "c.f_hour", "c.f_department", "c.f_agent", "c.f_status", "c.f_wait",
        "c.f_first_response", "c.f_session", "a.handle", "COALESCE(a.transfers, 0)",
        "COALESCE(m.n, 0)", "COALESCE(t.n, 0)", "s.rating",
        "(i.n IS NOT NULL)",
        "COALESCE(q.n, 0)" if qa else "0", "COALESCE(q.total, 0)" if qa else "0",
    ]  # fmt: skip
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"SELECT {', '.join(select)} FROM ({base_sql}) c {' '.join(joins)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _rollup_source(*, start: dt.date, end: dt.date) -> QuerySet:
    ended = Q(status=Conversation.Status.ENDED, session__isnull=False)
    return (
        ConversationFact.objects.filter(day__gte=start, day__lte=end)
        .values("day", "department_id", "agent_id")
        .annotate(
            r_chats=Count("pk"),
            r_missed=Count("pk", filter=Q(status=Conversation.Status.MISSED)),
            r_abandoned=Count("pk", filter=Q(status=Conversation.Status.ABANDONED)),
            r_accepted=Count("wait"),
            r_wait_count=Count("wait"),
            r_wait_sum=Sum("wait"),
            r_fr_count=Count("first_response"),
            r_fr_sum=Sum("first_response"),
            r_session_count=Count("session"),
            r_session_sum=Sum("session"),
            r_handle_count=Count("handle"),
            r_handle_sum=Sum("handle"),
            r_ended=Count("pk", filter=ended),
            r_surveys=Count("rating"),
            r_rating_sum=Coalesce(Sum("rating"), 0),
            r_satisfied=Count("pk", filter=Q(rating__gte=4)),
            r_transfers=Coalesce(Sum("transfers"), 0),
            r_tickets=Coalesce(Sum("tickets"), 0),
            r_canned=Coalesce(Sum("canned_uses"), 0),
            r_proactive=Count("pk", filter=Q(proactive=True)),
            r_qa_count=Coalesce(Sum("qa_count"), 0),
            r_qa_score_sum=Coalesce(Sum("qa_score_sum"), 0.0),
        )
        .order_by()
    )


_ROLLUP_COLUMNS = [
    ("day", "day"),
    ("department", "department_id"),
    ("agent", "agent_id"),
    ("chats", "r_chats"),
    ("missed", "r_missed"),
    ("abandoned", "r_abandoned"),
    ("accepted", "r_accepted"),
    ("wait_count", "r_wait_count"),
    ("wait_sum", "r_wait_sum"),
    ("first_response_count", "r_fr_count"),
    ("first_response_sum", "r_fr_sum"),
    ("session_count", "r_session_count"),
    ("session_sum", "r_session_sum"),
    ("handle_count", "r_handle_count"),
    ("handle_sum", "r_handle_sum"),
    ("ended", "r_ended"),
    ("surveys", "r_surveys"),
    ("rating_sum", "r_rating_sum"),
    ("satisfied", "r_satisfied"),
    ("transfers", "r_transfers"),
    ("tickets", "r_tickets"),
    ("canned_uses", "r_canned"),
    ("proactive_chats", "r_proactive"),
    ("qa_count", "r_qa_count"),
    ("qa_score_sum", "r_qa_score_sum"),
]


def _insert(model: type, mapping: list[tuple[str, str]], qs: QuerySet) -> None:
    sql, params = qs.values_list(*[src for _, src in mapping]).query.sql_with_params()
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(
        connection.ops.quote_name(model._meta.get_field(dst).column) for dst, _ in mapping
    )
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({names}) {sql}", params)


# Occupancy: every online presence interval and every accepted assignment (clipped to the range)
# becomes a +1 and a -1 event (one scan of each table, crossed with the two edges), and every local midnight of the range a 0 event for each agent, so
# no stretch crosses midnight. Running sums over the agent's events, ordered by time, give at
# each instant whether the agent is online and how many chats it holds; LEAD gives how long that
# lasts; the local day of the stretch's start is its day (PostgreSQL: `AT TIME ZONE`, one
# expression per row; SQLite, which has no time zones: the day whose [lo, hi) holds it). Events at the same instant
# are peers of the RANGE frame, so they share one running sum and only the last of them carries
# the length: ties need no special order.
_OCCUPANCY_SQL = """
WITH days (d, lo, hi) AS (VALUES {days}),
edge (s) AS (VALUES (1), (-1)),
ev AS (
    SELECT p.agent_id AS agent_id,
           CASE WHEN edge.s = 1 THEN {greatest}(p.started_at, %(lo)s)
                ELSE {least}(COALESCE(p.ended_at, %(now)s), %(hi)s) END AS t,
           0 AS dc, edge.s AS dn
      FROM chat_presenceinterval p CROSS JOIN edge
     WHERE p.status = 'online' AND p.started_at < %(hi)s AND COALESCE(p.ended_at, %(now)s) > %(lo)s
    UNION ALL
    SELECT a.agent_id,
           CASE WHEN edge.s = 1 THEN {greatest}(a.accepted_at, %(lo)s)
                ELSE {least}(COALESCE(a.ended_at, %(now)s), %(hi)s) END,
           edge.s, 0
      FROM chat_assignment a JOIN chat_conversation c ON c.id = a.conversation_id CROSS JOIN edge
     WHERE a.accepted_at IS NOT NULL AND NOT c.is_training
       AND a.accepted_at < %(hi)s AND COALESCE(a.ended_at, %(now)s) > %(lo)s
), allev AS (
    SELECT agent_id, t, dc, dn FROM ev
    UNION ALL
    SELECT x.agent_id, days.lo, 0, 0 FROM (SELECT DISTINCT agent_id FROM ev) x CROSS JOIN days
), run AS (
    SELECT agent_id, t,
           SUM(dc) OVER (PARTITION BY agent_id ORDER BY t) AS chats,
           SUM(dn) OVER (PARTITION BY agent_id ORDER BY t) AS online,
           LEAD(t) OVER (PARTITION BY agent_id ORDER BY t) AS nt
      FROM allev
)
SELECT {day}, run.agent_id, CASE WHEN chats >= 3 THEN 3 ELSE chats END AS busy, SUM({seconds}) AS secs
  FROM run {day_join}
 WHERE online > 0 AND nt IS NOT NULL AND nt > t
 GROUP BY 1, run.agent_id, CASE WHEN chats >= 3 THEN 3 ELSE chats END
"""


def _occupancy_sql(n_days: int) -> str:
    if connection.vendor == "postgresql":
        days = ", ".join(["(%s, %s::timestamptz, %s::timestamptz)"] * n_days)
        parts = {
            "greatest": "GREATEST",
            "least": "LEAST",
            "seconds": "EXTRACT(EPOCH FROM (nt - t))",
            # A join of every stretch against every day of a year was most of a recompute.
            "day": "(run.t AT TIME ZONE %(tz)s)::date",
            "day_join": "",
        }
    else:
        # SQLite: the two-argument MAX/MIN are scalar; julianday() is in days.
        days = ", ".join(["(%s, %s, %s)"] * n_days)
        parts = {
            "greatest": "MAX",
            "least": "MIN",
            "seconds": "(julianday(nt) - julianday(t)) * 86400.0",
            "day": "days.d",
            "day_join": "JOIN days ON run.t >= days.lo AND run.t < days.hi",
        }
    return _OCCUPANCY_SQL.format(days=days, **parts)


def _recompute_occupancy(
    *, start: dt.date, end: dt.date, tz: zoneinfo.ZoneInfo, now: dt.datetime
) -> None:
    adapt = connection.ops.adapt_datetimefield_value
    lo, hi = local_day_bounds(start=start, end=end, tz=tz)
    days = []
    day = start
    while day <= end:
        d_lo, d_hi = local_day_bounds(start=day, end=day, tz=tz)
        days.append((day.toordinal(), adapt(d_lo), adapt(d_hi)))
        day += dt.timedelta(days=1)
    # Named placeholders for the range, positional ones for the day list: render the day list
    # into %(d0)s… names so one parameter style is used throughout.
    sql = _occupancy_sql(len(days))
    params: dict[str, object] = {
        "lo": adapt(lo),
        "hi": adapt(hi),
        "now": adapt(min(now, hi)),
        "tz": tz.key,
    }
    pieces = sql.split("%s")
    named = [pieces[0]]
    for i, piece in enumerate(pieces[1:]):
        named.append(f"%(v{i})s")
        named.append(piece)
        params[f"v{i}"] = days[i // 3][i % 3]
    buckets: dict[tuple[dt.date, int], list[float]] = {}
    with connection.cursor() as cursor:
        cursor.execute("".join(named), params)
        for day_or_ordinal, agent_id, busy, secs in cursor.fetchall():
            day = (
                day_or_ordinal
                if isinstance(day_or_ordinal, dt.date)
                else dt.date.fromordinal(int(day_or_ordinal))
            )
            buckets.setdefault((day, agent_id), [0.0, 0.0, 0.0, 0.0])[int(busy)] += float(secs)
    rows = []
    for (day, agent_id), b in buckets.items():
        s = [round(x) for x in b]
        rows.append(
            AgentOccupancy(
                day=day,
                agent_id=agent_id,
                online_seconds=sum(s),
                seconds_0=s[0],
                seconds_1=s[1],
                seconds_2=s[2],
                seconds_3plus=s[3],
            )
        )
    AgentOccupancy.objects.bulk_create(rows, batch_size=2000)


def _bump_versions(*, start: dt.date, end: dt.date) -> None:
    """Give every day of the range a new version, higher than any before: the dashboard's cache
    keys on the highest version of a range's days, so any recomputed day retires its entries."""
    ReportingSettings.objects.filter(pk=1).update(data_version=F("data_version") + 1)
    version = ReportingSettings.objects.values_list("data_version", flat=True).get(pk=1)
    days = []
    day = start
    while day <= end:
        days.append(ReportingDay(day=day, version=version))
        day += dt.timedelta(days=1)
    ReportingDay.objects.bulk_create(
        days, update_conflicts=True, unique_fields=["day"], update_fields=["version"]
    )


def recompute_days(*, start: dt.date, end: dt.date, now: dt.datetime | None = None) -> None:
    """Rebuild every reporting row of the local days start..end (inclusive).

    One transaction; recomputes run one at a time (a row lock on the settings), so two workers
    refreshing the same day never both insert its rows.
    """
    if end < start:
        raise ValueError("end is before start")
    now = now or timezone.now()
    ReportingSettings.load()
    with tuned(write=True):
        settings = ReportingSettings.objects.select_for_update().get(pk=1)
        tz = settings.tzinfo
        lo, hi = local_day_bounds(start=start, end=end, tz=tz)
        ConversationFact.objects.filter(Q(day__gte=start, day__lte=end)).delete()
        # A fact of this window may sit on another day after the time zone changed.
        ConversationFact.objects.filter(
            conversation__created_at__gte=lo, conversation__created_at__lt=hi
        ).delete()
        _insert_facts(lo=lo, hi=hi, tz=tz)

        DailyRollup.objects.filter(day__gte=start, day__lte=end).delete()
        _insert(DailyRollup, _ROLLUP_COLUMNS, _rollup_source(start=start, end=end))

        HourlyVolume.objects.filter(day__gte=start, day__lte=end).delete()
        hourly = (
            ConversationFact.objects.filter(day__gte=start, day__lte=end)
            .values("day", "department_id", "hour")
            .annotate(n=Count("pk"))
            .order_by()
        )
        _insert(
            HourlyVolume,
            [("day", "day"), ("department", "department_id"), ("hour", "hour"), ("chats", "n")],
            hourly,
        )

        InvitationRollup.objects.filter(day__gte=start, day__lte=end).delete()
        invitations = (
            ProactiveInvitation.objects.filter(sent_at__gte=lo, sent_at__lt=hi)
            .annotate(i_day=TruncDate("sent_at", tzinfo=tz))
            .values("i_day", "department_id")
            .annotate(
                i_sent=Count("pk"),
                i_accepted=Count("pk", filter=Q(status=ProactiveInvitation.Status.ACCEPTED)),
                i_declined=Count("pk", filter=Q(status=ProactiveInvitation.Status.DECLINED)),
                i_chats=Count(
                    "pk", filter=Q(conversation__isnull=False, conversation__is_training=False)
                ),
            )
            .order_by()
        )
        _insert(
            InvitationRollup,
            [
                ("day", "i_day"),
                ("department", "department_id"),
                ("sent", "i_sent"),
                ("accepted", "i_accepted"),
                ("declined", "i_declined"),
                ("chats", "i_chats"),
            ],
            invitations,
        )

        AgentOccupancy.objects.filter(day__gte=start, day__lte=end).delete()
        _recompute_occupancy(start=start, end=end, tz=tz, now=now)
        _bump_versions(start=start, end=end)


def recompute_conversation_day(*, conversation_id: int) -> None:
    """A late event (end, survey, ticket) of one conversation: rebuild its local day."""
    created = (
        Conversation.objects.filter(pk=conversation_id).values_list("created_at", flat=True).first()
    )
    if created is None:
        return
    day = local_day_of(at=created, tz=ReportingSettings.load().tzinfo)
    recompute_days(start=day, end=day)


def recompute_today(*, now: dt.datetime | None = None) -> None:
    """Beat keeps today (and yesterday, for chats that ran past midnight) fresh."""
    now = now or timezone.now()
    today = local_day_of(at=now, tz=ReportingSettings.load().tzinfo)
    recompute_days(start=today - dt.timedelta(days=1), end=today, now=now)
