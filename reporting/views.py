"""The reporting dashboard (in the admin), its CSV export, and an agent's own figures."""

from __future__ import annotations

import csv
import datetime as dt
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from chat.models import AgentProfile
from compliance import roles
from reporting import selectors, services
from reporting.forms import DashboardFilterForm
from reporting.models import ReportingSettings

HEADLINES = [
    ("chats", "Chats", "count", None),
    ("missed", "Missed", "count", "missed"),
    ("abandoned", "Abandoned", "count", "abandoned"),
    ("wait_avg", "Wait, average", "seconds", None),
    ("wait_median", "Wait, median", "seconds", None),
    ("wait_p90", "Wait, p90", "seconds", None),
    ("first_response_avg", "First response, average", "seconds", None),
    ("first_response_median", "First response, median", "seconds", None),
    ("first_response_p90", "First response, p90", "seconds", None),
    ("session_avg", "Session length, average", "seconds", None),
    ("session_median", "Session length, median", "seconds", None),
    ("session_p90", "Session length, p90", "seconds", None),
    ("handle_avg", "Handle time, average", "seconds", None),
    ("handle_median", "Handle time, median", "seconds", None),
    ("handle_p90", "Handle time, p90", "seconds", None),
    ("survey_response_rate", "Survey response rate", "percent", None),
    ("average_rating", "Average rating", "number", None),
    ("csat", "CSAT (4 and 5)", "percent", None),
    ("transfers", "Transfers", "count", None),
    ("tickets", "Tickets created", "count", None),
    ("canned_uses", "Canned responses used", "count", None),
    ("invitations_sent", "Proactive invitations sent", "count", None),
    ("invitations_accepted", "Invitations accepted", "count", None),
    ("invitations_declined", "Invitations declined", "count", None),
    ("invitation_chats", "Chats from invitations", "count", None),
    ("qa_average", "QA score (from coaching)", "number", None),
]


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "seconds":
        return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"
    if kind == "percent":
        return f"{value * 100:.1f} %"
    if kind == "number":
        return f"{value:.2f}"
    return str(value)


def _drill_url(
    *, start: dt.date, end: dt.date, department: Any, agent: Any, status: str | None
) -> str:
    lo, hi = services.local_day_bounds(start=start, end=end, tz=ReportingSettings.load().tzinfo)
    params: dict[str, Any] = {
        "created_at__gte": lo.isoformat(),
        "created_at__lt": hi.isoformat(),
        "is_training__exact": "0",
    }
    if department is not None:
        params["department__id__exact"] = department.pk
    if agent is not None:
        params["agent__id__exact"] = agent.pk
    if status:
        params["status__exact"] = status
    return reverse("admin:chat_conversation_changelist") + "?" + urlencode(params)


def _csv(name: str, rows: list[dict[str, Any]]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="coachline-{name}.csv"'
    writer = csv.writer(response)
    if rows:
        writer.writerow(rows[0].keys())
        for row in rows:
            writer.writerow(["" if v is None else v for v in row.values()])
    return response


CSV_TABLES = ("summary", "daily", "hourly", "agents")


def dashboard(request: HttpRequest) -> HttpResponse:
    # Department figures are for supervisors (their departments) and administrators; an agent's
    # own figures are on its own page (my_stats).
    if not (roles.is_supervisor(request.user) or roles.is_administrator(request.user)):
        raise PermissionDenied
    with selectors.without_jit():
        return _dashboard(request)


def _dashboard(request: HttpRequest) -> HttpResponse:
    """Admin view: headline figures vs the previous range, charts, per-agent table, CSV export."""
    form = DashboardFilterForm(request.GET or None, user=request.user)
    if request.GET and not form.is_valid():
        return render(
            request,
            "reporting/dashboard.html",
            {**admin.site.each_context(request), "title": "Reporting", "form": form},
            status=400,
        )
    if not request.GET:
        form = DashboardFilterForm({}, user=request.user)
        form.is_valid()
    data = form.cleaned_data
    start, end, department, agent = data["start"], data["end"], data["department"], data["agent"]
    scope: dict[str, Any] = {
        "user": request.user,
        "department_ids": [department.pk] if department else None,
        "agent_id": agent.pk if agent else None,
    }
    current = selectors.summary(start=start, end=end, **scope)
    prev_start, prev_end = form.previous_range()
    previous = selectors.summary(start=prev_start, end=prev_end, **scope)
    daily = selectors.daily_series(start=start, end=end, **scope)
    hourly = selectors.hourly_volume(
        user=request.user, start=start, end=end, department_ids=scope["department_ids"]
    )
    agents = selectors.agent_table(start=start, end=end, **scope)

    table = request.GET.get("csv")
    if table:
        if table == "summary":
            return _csv(
                "summary",
                [{"figure": k, "current": current[k], "previous": previous[k]} for k in current],
            )
        if table == "daily":
            return _csv("daily", daily)
        if table == "hourly":
            return _csv("hourly", [{"hour": h, "chats": n} for h, n in enumerate(hourly)])
        if table == "agents":
            return _csv("agents", agents)
        return HttpResponse(f"Unknown table; choose one of {', '.join(CSV_TABLES)}.", status=400)

    headlines = [
        {
            "key": key,
            "label": label,
            "current": _fmt(current[key], kind),
            "previous": _fmt(previous[key], kind),
            "drill": _drill_url(
                start=start, end=end, department=department, agent=agent, status=status
            )
            if kind == "count" and key in ("chats", "missed", "abandoned")
            else None,
        }
        for key, label, kind, status in HEADLINES
    ]
    query = request.GET.copy()
    query.pop("csv", None)
    context = {
        **admin.site.each_context(request),
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
                "handle": _fmt(row["handle_avg"], "seconds"),
                "csat_text": _fmt(row["csat"], "percent"),
                "occ": [_fmt(row[f"occupancy_{k}"], "percent") for k in ("0", "1", "2", "3plus")],
                "drill": _drill_url(
                    start=start,
                    end=end,
                    department=department,
                    agent=AgentProfile(pk=row["agent_id"]),
                    status=None,
                ),
            }
            for row in agents
        ],
        "departments": form.departments,
        "agent_choices": form.agents.order_by("display_name"),
        "chart_data": {"daily": daily, "hourly": hourly},
        "csv_links": [(t, "?" + urlencode({**query.dict(), "csv": t})) for t in CSV_TABLES],
    }
    return render(request, "reporting/dashboard.html", context)


@login_required
def my_stats(request: HttpRequest) -> HttpResponse:
    """An agent's own figures over the last 28 local days; only its own, whoever asks."""
    agent = AgentProfile.objects.filter(user=request.user).first()
    if agent is None:
        return render(request, "chat/not_an_agent.html", status=403)
    tz = ReportingSettings.load().tzinfo
    end = dt.datetime.now(tz).date()
    start = end - dt.timedelta(days=27)
    own = {"user": request.user, "start": start, "end": end, "agent_id": agent.pk}
    figures = selectors.summary(**own)
    row = next(iter(selectors.agent_table(**own)), None)
    rows = [
        (label, _fmt(figures[key], kind))
        for key, label, kind, _ in HEADLINES
        if key
        in (
            "chats",
            "first_response_avg",
            "session_avg",
            "handle_avg",
            "csat",
            "average_rating",
            "transfers",
        )
    ]
    return render(
        request,
        "reporting/my_stats.html",
        {"agent": agent, "start": start, "end": end, "rows": rows, "occupancy": row},
    )
