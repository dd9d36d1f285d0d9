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

from django.db import connection
from django.db.models import (
    Case,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
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
    ReportingSettings,
)
from reporting.selectors import without_jit


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


def _count_of(qs: QuerySet) -> Coalesce:
    return Coalesce(Subquery(qs.values("conversation").annotate(n=Count("pk")).values("n")), 0)


def _facts_source(*, lo: dt.datetime, hi: dt.datetime, tz: zoneinfo.ZoneInfo) -> QuerySet:
    ended_assignments = Assignment.objects.filter(
        conversation=OuterRef("pk"), accepted_at__isnull=False, ended_at__isnull=False
    )
    handle = Subquery(
        ended_assignments.values("conversation")
        .annotate(s=Sum(_duration("ended_at", "accepted_at")))
        .values("s")
    )
    return Conversation.objects.filter(
        is_training=False, created_at__gte=lo, created_at__lt=hi
    ).annotate(
        f_day=TruncDate("created_at", tzinfo=tz),
        f_hour=ExtractHour("created_at", tzinfo=tz),
        f_wait=_duration("assigned_at", "queued_at"),
        f_first_response=_duration("first_agent_reply_at", "assigned_at"),
        # Session length and handle time exist once the chat has ended.
        f_session=Case(
            When(status=Conversation.Status.ENDED, then=_duration("ended_at", "assigned_at")),
            output_field=DurationField(),
        ),
        f_handle=ExpressionWrapper(handle, output_field=DurationField()),
        f_transfers=_count_of(
            Assignment.objects.filter(conversation=OuterRef("pk"), end_reason="transferred")
        ),
        f_canned=Value(0),  # filled by _update_canned_uses
        f_tickets=_count_of(Ticket.objects.filter(conversation=OuterRef("pk"))),
        f_rating=Subquery(
            SurveyResponse.objects.filter(conversation=OuterRef("pk")).values("rating")[:1]
        ),
        f_proactive=Exists(ProactiveInvitation.objects.filter(conversation=OuterRef("pk"))),
    )


_FACT_COLUMNS = [
    ("conversation", "pk"),
    ("day", "f_day"),
    ("hour", "f_hour"),
    ("department", "department_id"),
    ("agent", "agent_id"),
    ("status", "status"),
    ("wait", "f_wait"),
    ("first_response", "f_first_response"),
    ("session", "f_session"),
    ("handle", "f_handle"),
    ("transfers", "f_transfers"),
    ("canned_uses", "f_canned"),
    ("tickets", "f_tickets"),
    ("rating", "f_rating"),
    ("proactive", "f_proactive"),
]


def _update_canned_uses(*, lo: dt.datetime, hi: dt.datetime) -> None:
    """Canned-response uses per conversation, from one grouped scan of the range's messages.

    A correlated count per conversation read every message's row through the index one
    conversation at a time, which was most of the facts' cost at a million messages.
    """
    counts = (
        Message.objects.filter(
            meta__has_key="canned",
            conversation__created_at__gte=lo,
            conversation__created_at__lt=hi,
            conversation__is_training=False,
        )
        .values("conversation_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    sql, params = counts.query.sql_with_params()
    table = connection.ops.quote_name(ConversationFact._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET canned_uses = x.n FROM ({sql}) x "
            f"WHERE {table}.conversation_id = x.conversation_id",
            params,
        )


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
            # Coaching's QA scores: none stored yet, so the slot is zero (docs/metrics.md).
            r_qa_count=Value(0),
            r_qa_score_sum=Value(0.0),
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
# becomes a +1 and a -1 event, and every local midnight of the range a 0 event for each agent, so
# no stretch crosses midnight. Running sums over the agent's events, ordered by time, give at
# each instant whether the agent is online and how many chats it holds; LEAD gives how long that
# lasts; the day whose [lo, hi) holds the stretch's start is its day. Events at the same instant
# are peers of the RANGE frame, so they share one running sum and only the last of them carries
# the length: ties need no special order.
_OCCUPANCY_SQL = """
WITH days (d, lo, hi) AS (VALUES {days}),
ev AS (
    SELECT p.agent_id AS agent_id, {greatest}(p.started_at, %(lo)s) AS t, 0 AS dc, 1 AS dn
      FROM chat_presenceinterval p
     WHERE p.status = 'online' AND p.started_at < %(hi)s AND COALESCE(p.ended_at, %(now)s) > %(lo)s
    UNION ALL
    SELECT p.agent_id, {least}(COALESCE(p.ended_at, %(now)s), %(hi)s), 0, -1
      FROM chat_presenceinterval p
     WHERE p.status = 'online' AND p.started_at < %(hi)s AND COALESCE(p.ended_at, %(now)s) > %(lo)s
    UNION ALL
    SELECT a.agent_id, {greatest}(a.accepted_at, %(lo)s), 1, 0
      FROM chat_assignment a JOIN chat_conversation c ON c.id = a.conversation_id
     WHERE a.accepted_at IS NOT NULL AND NOT c.is_training
       AND a.accepted_at < %(hi)s AND COALESCE(a.ended_at, %(now)s) > %(lo)s
    UNION ALL
    SELECT a.agent_id, {least}(COALESCE(a.ended_at, %(now)s), %(hi)s), -1, 0
      FROM chat_assignment a JOIN chat_conversation c ON c.id = a.conversation_id
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
SELECT days.d, run.agent_id, CASE WHEN chats >= 3 THEN 3 ELSE chats END AS busy, SUM({seconds}) AS secs
  FROM run JOIN days ON run.t >= days.lo AND run.t < days.hi
 WHERE online > 0 AND nt IS NOT NULL AND nt > t
 GROUP BY days.d, run.agent_id, CASE WHEN chats >= 3 THEN 3 ELSE chats END
"""


def _occupancy_sql(n_days: int) -> str:
    if connection.vendor == "postgresql":
        days = ", ".join(["(%s, %s::timestamptz, %s::timestamptz)"] * n_days)
        parts = {
            "greatest": "GREATEST",
            "least": "LEAST",
            "seconds": "EXTRACT(EPOCH FROM (nt - t))",
        }
    else:
        # SQLite: the two-argument MAX/MIN are scalar; julianday() is in days.
        days = ", ".join(["(%s, %s, %s)"] * n_days)
        parts = {
            "greatest": "MAX",
            "least": "MIN",
            "seconds": "(julianday(nt) - julianday(t)) * 86400.0",
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
    params: dict[str, object] = {"lo": adapt(lo), "hi": adapt(hi), "now": adapt(min(now, hi))}
    pieces = sql.split("%s")
    named = [pieces[0]]
    for i, piece in enumerate(pieces[1:]):
        named.append(f"%(v{i})s")
        named.append(piece)
        params[f"v{i}"] = days[i // 3][i % 3]
    buckets: dict[tuple[int, int], list[float]] = {}
    with connection.cursor() as cursor:
        cursor.execute("".join(named), params)
        for ordinal, agent_id, busy, secs in cursor.fetchall():
            buckets.setdefault((ordinal, agent_id), [0.0, 0.0, 0.0, 0.0])[int(busy)] += float(secs)
    rows = []
    for (ordinal, agent_id), b in buckets.items():
        s = [round(x) for x in b]
        rows.append(
            AgentOccupancy(
                day=dt.date.fromordinal(ordinal),
                agent_id=agent_id,
                online_seconds=sum(s),
                seconds_0=s[0],
                seconds_1=s[1],
                seconds_2=s[2],
                seconds_3plus=s[3],
            )
        )
    AgentOccupancy.objects.bulk_create(rows, batch_size=2000)


def recompute_days(*, start: dt.date, end: dt.date, now: dt.datetime | None = None) -> None:
    """Rebuild every reporting row of the local days start..end (inclusive)."""
    if end < start:
        raise ValueError("end is before start")
    now = now or timezone.now()
    tz = ReportingSettings.load().tzinfo
    lo, hi = local_day_bounds(start=start, end=end, tz=tz)
    with without_jit():
        ConversationFact.objects.filter(Q(day__gte=start, day__lte=end)).delete()
        # A fact of this window may sit on another day after the time zone changed.
        ConversationFact.objects.filter(
            conversation__created_at__gte=lo, conversation__created_at__lt=hi
        ).delete()
        _insert(ConversationFact, _FACT_COLUMNS, _facts_source(lo=lo, hi=hi, tz=tz))
        _update_canned_uses(lo=lo, hi=hi)

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
