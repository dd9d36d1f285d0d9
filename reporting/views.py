"""The reporting dashboard (in the admin), its drill-down and CSV exports, and an agent's own figures."""

from __future__ import annotations

import csv
import datetime as dt
import zoneinfo
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse

from chat.models import AgentProfile
from compliance import roles
from reporting import selectors
from reporting.forms import DashboardFilterForm
from reporting.models import ConversationFact, ReportingSettings

# (key, label, kind, drill-down figure or None). The drill-down lists the conversations behind
# the figure (reporting.selectors.DRILL_FIGURES); invitations that led to no chat have none.
HEADLINES = [
    ("chats", "Chats", "count", "chats"),
    ("missed", "Missed", "count", "missed"),
    ("abandoned", "Abandoned", "count", "abandoned"),
    ("wait_avg", "Wait, average", "seconds", "wait"),
    ("wait_median", "Wait, median", "seconds", "wait"),
    ("wait_p90", "Wait, p90", "seconds", "wait"),
    ("first_response_avg", "First response, average", "seconds", "first_response"),
    ("first_response_median", "First response, median", "seconds", "first_response"),
    ("first_response_p90", "First response, p90", "seconds", "first_response"),
    ("session_avg", "Session length, average", "seconds", "session"),
    ("session_median", "Session length, median", "seconds", "session"),
    ("session_p90", "Session length, p90", "seconds", "session"),
    ("handle_avg", "Handle time, average", "seconds", "handle"),
    ("handle_median", "Handle time, median", "seconds", "handle"),
    ("handle_p90", "Handle time, p90", "seconds", "handle"),
    ("surveys", "Surveys answered", "count", "surveys"),
    ("survey_response_rate", "Survey response rate", "percent", "surveys"),
    ("average_rating", "Average rating", "number", "surveys"),
    ("csat", "CSAT (4 and 5)", "percent", "surveys"),
    ("transfers", "Transfers", "count", "transfers"),
    ("tickets", "Tickets created", "count", "tickets"),
    ("canned_uses", "Canned responses used", "count", "canned"),
    ("invitations_sent", "Proactive invitations sent", "count", None),
    ("invitations_accepted", "Invitations accepted", "count", None),
    ("invitations_declined", "Invitations declined", "count", None),
    ("invitation_chats", "Chats from invitations", "count", "proactive"),
    ("qa_reviews", "QA reviews scored (coaching)", "count", "qa"),
    ("qa_average", "QA score, average of 100 (coaching)", "number", "qa"),
]
HEADLINE_LABELS = {key: label for key, label, _, _ in HEADLINES}

CSV_TABLES = ("summary", "daily", "hourly", "agents")


def fmt(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "seconds":
        return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"
    if kind == "percent":
        return f"{value * 100:.1f} %"
    if kind == "number":
        return f"{value:.2f}"
    return str(value)


def _csv_rows(rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    class Line:
        def write(self, value: str) -> str:
            return value

    writer = csv.writer(Line())
    for row in rows:
        yield writer.writerow(["" if v is None else v for v in row])


def _csv(name: str, rows: list[dict[str, Any]], *, header: list[str] | None = None) -> HttpResponse:
    header = header or (list(rows[0].keys()) if rows else [])
    lines = [header] + [[row.get(k) for k in header] for row in rows]
    response = HttpResponse("".join(_csv_rows(lines)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="coachline-{name}.csv"'
    return response


def _may_see_dashboard(request: HttpRequest) -> None:
    # Department figures are for supervisors (their departments) and administrators; an agent's
    # own figures are on its own page (my_stats).
    if not (roles.is_supervisor(request.user) or roles.is_administrator(request.user)):
        raise PermissionDenied


def _admin_context(request: HttpRequest) -> dict[str, Any]:
    # Drawn full width, without the admin's navigation sidebar (the breadcrumbs lead back): the
    # charts and the agent table need the room, and rendering the sidebar, a link per model of
    # the whole back office, was a sixth of a warm dashboard page (docs/benchmarks.md, Reporting).
    return {**admin.site.each_context(request), "is_nav_sidebar_enabled": False}


def _filters(request: HttpRequest) -> tuple[DashboardFilterForm, bool]:
    form = DashboardFilterForm(request.GET, user=request.user)
    return form, form.is_valid()


def _bad_filters(request: HttpRequest, form: DashboardFilterForm) -> HttpResponse:
    return render(
        request,
        "reporting/dashboard.html",
        {**_admin_context(request), "title": "Reporting", "form": form},
        status=400,
    )


def _scope(request: HttpRequest, data: dict[str, Any]) -> selectors.Scope:
    department, agent = data["department"], data["agent"]
    return selectors.resolve_scope(
        user=request.user,
        department_ids=[department.pk] if department else None,
        agent_id=agent.pk if agent else None,
    )


def _filter_query(data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    query: dict[str, Any] = {"start": data["start"].isoformat(), "end": data["end"].isoformat()}
    if data["department"]:
        query["department"] = data["department"].slug
    if data["agent"]:
        query["agent"] = data["agent"].pk
    query.update({k: v for k, v in extra.items() if v is not None})
    return query


def dashboard(request: HttpRequest) -> HttpResponse:
    """Admin view: headline figures vs the previous range, charts, per-agent table, CSV export."""
    _may_see_dashboard(request)
    form, valid = _filters(request)
    if not valid:
        return _bad_filters(request, form)
    data = form.cleaned_data
    start, end = data["start"], data["end"]
    prev_start, prev_end = form.previous_range()
    scope = _scope(request, data)
    figures = selectors.dashboard(
        scope=scope, start=start, end=end, previous=(prev_start, prev_end)
    )
    current, previous = figures["current"], figures["previous"]
    daily, hourly, agents = figures["daily"], figures["hourly"], figures["agents"]

    table = request.GET.get("csv")
    if table:
        if table == "summary":
            return _csv(
                "summary",
                [
                    {
                        "figure": k,
                        "label": HEADLINE_LABELS.get(k, k),
                        "current": current[k],
                        "previous": previous[k],
                    }
                    for k in current
                ],
                header=["figure", "label", "current", "previous"],
            )
        if table == "daily":
            return _csv("daily", daily)
        if table == "hourly":
            return _csv("hourly", [{"hour": h, "chats": n} for h, n in enumerate(hourly)])
        if table == "agents":
            return _csv("agents", agents)
        return HttpResponse(
            f"Unknown table; choose one of {', '.join(CSV_TABLES)}.",
            status=400,
            content_type="text/plain; charset=utf-8",
        )

    drill_base = reverse("admin:reporting_drilldown")

    def drill(figure: str | None, **extra: Any) -> str | None:
        if figure is None:
            return None
        return drill_base + "?" + urlencode(_filter_query(data, figure=figure, **extra))

    headlines = [
        {
            "key": key,
            "label": label,
            "current": fmt(current[key], kind),
            "previous": fmt(previous[key], kind),
            "drill": drill(figure),
        }
        for key, label, kind, figure in HEADLINES
    ]
    query = _filter_query(data)
    context = {
        **_admin_context(request),
        "title": "Reporting",
        "form": form,
        "start": start,
        "end": end,
        "previous_start": prev_start,
        "previous_end": prev_end,
        "headlines": headlines,
        "agents": [
            {
                **row,
                "handle": fmt(row["handle_avg"], "seconds"),
                "csat_text": fmt(row["csat"], "percent"),
                "qa_text": fmt(row["qa_average"], "number"),
                "online": fmt(row["online_seconds"] / 3600, "number") + " h",
                "occ": [fmt(row[f"occupancy_{k}"], "percent") for k in ("0", "1", "2", "3plus")],
                "drill": drill("chats", agent=row["agent_id"]),
                "drill_surveys": drill("surveys", agent=row["agent_id"]),
                "drill_qa": drill("qa", agent=row["agent_id"]),
            }
            for row in agents
        ],
        "daily": daily,
        "departments": form.departments,
        "agent_choices": form.agents.order_by("display_name"),
        "chart_data": {
            "daily": daily,
            "hourly": hourly,
            # The daily chart's points open the drill-down of their day.
            "drill": drill_base + "?" + urlencode({**query, "figure": "chats"}),
        },
        "csv_links": [(t, "?" + urlencode({**query, "csv": t})) for t in CSV_TABLES],
    }
    return render(request, "reporting/dashboard.html", context)


def drilldown(request: HttpRequest) -> HttpResponse:
    """The conversations behind a dashboard figure, each linked to its transcript (the admin's
    conversation page, where opening it is audited). `?csv=1` exports the whole list."""
    _may_see_dashboard(request)
    form, valid = _filters(request)
    figure = request.GET.get("figure") or "chats"
    if figure not in selectors.DRILL_FIGURES:
        form.add_error(
            None,
            f"Unknown figure “{figure}”; choose one of {', '.join(selectors.DRILL_FIGURES)}.",
        )
        valid = False
    if not valid:
        return _bad_filters(request, form)
    data = form.cleaned_data
    scope = _scope(request, data)
    tz = form.settings.tzinfo
    facts = selectors.drilldown(scope=scope, start=data["start"], end=data["end"], figure=figure)
    if request.GET.get("csv"):
        return _drill_csv(facts, tz=tz, figure=figure)
    page = Paginator(facts, 100).get_page(request.GET.get("page"))
    rows = [_drill_row(fact, tz=tz) for fact in page.object_list]
    query = _filter_query(data, figure=figure)
    context = {
        **_admin_context(request),
        "title": f"Reporting: {selectors.DRILL_FIGURES[figure]}",
        "figure_label": selectors.DRILL_FIGURES[figure],
        "form": form,
        "start": data["start"],
        "end": data["end"],
        "rows": rows,
        "page": page,
        "query": urlencode(query),
        "csv_link": "?" + urlencode({**query, "csv": 1}),
        "dashboard_link": reverse("admin:reporting_dashboard") + "?" + urlencode(_filter_query(data)),
    }
    return render(request, "reporting/drilldown.html", context)


DRILL_COLUMNS = [
    "conversation", "created", "day", "department", "agent", "status", "wait_s",
    "first_response_s", "session_s", "handle_s", "rating", "transfers", "tickets",
    "canned_uses", "proactive", "qa_reviews", "qa_average",
]  # fmt: skip


def _secs(value: dt.timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)


def _drill_row(fact: ConversationFact, *, tz: zoneinfo.ZoneInfo) -> dict[str, Any]:
    return {
        "conversation": fact.conversation_id,
        "created": fact.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
        "day": fact.day.isoformat(),
        "department": fact.department_name,
        "agent": fact.agent_name or "",
        "status": fact.status,
        "wait_s": _secs(fact.wait),
        "first_response_s": _secs(fact.first_response),
        "session_s": _secs(fact.session),
        "handle_s": _secs(fact.handle),
        "rating": fact.rating,
        "transfers": fact.transfers,
        "tickets": fact.tickets,
        "canned_uses": fact.canned_uses,
        "proactive": fact.proactive,
        "qa_reviews": fact.qa_count,
        "qa_average": round(fact.qa_score_sum / fact.qa_count, 2) if fact.qa_count else None,
        "transcript": reverse("admin:chat_conversation_change", args=[fact.conversation_id]),
    }


def _drill_csv(facts: Any, *, tz: zoneinfo.ZoneInfo, figure: str) -> StreamingHttpResponse:
    def rows() -> Iterator[list[Any]]:
        yield DRILL_COLUMNS
        for fact in facts.iterator(chunk_size=2000):
            row = _drill_row(fact, tz=tz)
            yield [row[c] for c in DRILL_COLUMNS]

    response = StreamingHttpResponse(_csv_rows(rows()), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="coachline-{figure}-chats.csv"'
    return response


@login_required
def my_stats(request: HttpRequest) -> HttpResponse:
    """An agent's own figures over the last 28 local days; only its own, whoever asks."""
    agent = AgentProfile.objects.filter(user=request.user).first()
    if agent is None:
        return render(request, "chat/not_an_agent.html", status=403)
    tz = ReportingSettings.load().tzinfo
    end = dt.datetime.now(tz).date()
    start = end - dt.timedelta(days=27)
    scope = selectors.resolve_scope(user=request.user, department_ids=None, agent_id=agent.pk)
    own = {"scope": scope, "start": start, "end": end}
    figures = selectors.summary(**own)
    row = next(iter(selectors.agent_table(**own)), None)
    daily = selectors.daily_series(**own)
    shown = (
        "chats",
        "wait_avg",
        "first_response_avg",
        "first_response_median",
        "session_avg",
        "handle_avg",
        "handle_median",
        "surveys",
        "average_rating",
        "csat",
        "transfers",
        "tickets",
        "canned_uses",
        "qa_reviews",
        "qa_average",
    )
    rows = [(label, fmt(figures[key], kind)) for key, label, kind, _ in HEADLINES if key in shown]
    if request.GET.get("csv"):
        return _csv(
            "my-figures",
            [{"figure": key, "label": HEADLINE_LABELS[key], "value": figures[key]} for key in shown]
            + [
                {"figure": k, "label": k, "value": row[k]}
                for k in (
                    "online_seconds",
                    "occupancy_0",
                    "occupancy_1",
                    "occupancy_2",
                    "occupancy_3plus",
                )
                if row
            ],
            header=["figure", "label", "value"],
        )
    occupancy = None
    if row:
        occupancy = {
            "online": fmt(row["online_seconds"] / 3600, "number") + " h",
            "shares": [
                (label, fmt(row[f"occupancy_{k}"], "percent"))
                for label, k in (
                    ("No chat", "0"),
                    ("One chat", "1"),
                    ("Two chats", "2"),
                    ("Three or more", "3plus"),
                )
            ],
        }
    return render(
        request,
        "reporting/my_stats.html",
        {
            "agent": agent,
            "start": start,
            "end": end,
            "rows": rows,
            "occupancy": occupancy,
            "daily": [
                {
                    "day": d["day"],
                    "chats": d["chats"],
                    "handle": fmt(d["handle_avg"], "seconds"),
                    "csat": fmt(d["csat"], "percent"),
                }
                for d in daily
                if d["chats"]
            ],
        },
    )
