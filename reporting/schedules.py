"""Scheduled metric e-mails: keeping each report's beat schedule in step, and sending one.

In real mode celery beat's DatabaseScheduler reads the PeriodicTask each report owns and
enqueues `reporting.tasks.send_metric_report` (which retries failed sends itself). In the
embedded default there is no beat process: the server's scheduler thread (reporting/scheduler.py)
calls `send_due` every 30 seconds, which sends the reports whose crontab came due since their
last run, and retries failed sends, through the same `send_report`.
"""

from __future__ import annotations

import datetime as dt
import json
from email.mime.image import MIMEImage

from celery.schedules import ParseException, crontab, crontab_parser
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from reporting import selectors
from reporting.chart import bar_chart_png
from reporting.models import MetricReport, MetricReportSend, ReportingSettings

PRESETS = {
    MetricReport.Frequency.DAILY: "0 7 * * *",
    MetricReport.Frequency.WEEKLY: "0 7 * * 1",
    MetricReport.Frequency.MONTHLY: "0 7 1 * *",
}
_FIELD_RANGES = ((60, 0), (24, 0), (31, 1), (12, 1), (7, 0))
_FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")


def parse_cron(expression: str) -> list[str]:
    """The five fields of a cron expression, or a ValidationError saying which field is wrong."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValidationError(
            f"A cron expression has 5 fields (minute hour day-of-month month day-of-week); got {len(fields)}."
        )
    for value, (size, first), name in zip(fields, _FIELD_RANGES, _FIELD_NAMES, strict=True):
        try:
            crontab_parser(size, first).parse(value)
        except (ValueError, IndexError, ParseException) as exc:
            raise ValidationError(f"The {name} field “{value}” is not valid: {exc}") from None
    try:
        crontab(
            minute=fields[0],
            hour=fields[1],
            day_of_month=fields[2],
            month_of_year=fields[3],
            day_of_week=fields[4],
        )
    except ValueError as exc:  # e.g. 31 February: valid fields that never match
        raise ValidationError(f"This cron expression never runs: {exc}") from None
    return fields


def validate_recipients(value: str) -> list[str]:
    addresses = [a.strip() for a in value.replace("\n", ",").split(",") if a.strip()]
    if not addresses:
        raise ValidationError("Give at least one e-mail address.")
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError(f"“{address}” is not a valid e-mail address.") from None
    return addresses


def cron_of(report: MetricReport) -> str:
    return (
        report.cron
        if report.frequency == MetricReport.Frequency.CRON
        else PRESETS[report.frequency]
    )


def sync_schedule(*, report: MetricReport) -> None:
    """Create or update the report's PeriodicTask so beat fires it on its crontab."""
    minute, hour, dom, month, dow = parse_cron(cron_of(report))
    tz = ReportingSettings.load().time_zone
    schedule, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=dom,
        month_of_year=month,
        day_of_week=dow,
        timezone=tz,
    )
    with transaction.atomic():
        task = report.periodic_task or PeriodicTask(name=f"metric-report-{report.pk}")
        task.name = f"metric-report-{report.pk}"
        task.task = "reporting.tasks.send_metric_report"
        task.crontab = schedule
        task.interval = None
        task.args = json.dumps([report.pk])
        task.enabled = report.enabled
        task.save()
        if report.periodic_task_id != task.pk:
            report.periodic_task = task
            report.save(update_fields=["periodic_task"])


def report_range(*, report: MetricReport, today: dt.date) -> tuple[dt.date, dt.date]:
    if report.frequency == MetricReport.Frequency.DAILY:
        return today - dt.timedelta(days=1), today - dt.timedelta(days=1)
    if report.frequency == MetricReport.Frequency.MONTHLY:
        end = today.replace(day=1) - dt.timedelta(days=1)
        return end.replace(day=1), end
    return today - dt.timedelta(days=7), today - dt.timedelta(days=1)


def build_message(*, report: MetricReport, now: dt.datetime) -> EmailMultiAlternatives:
    tz = ReportingSettings.load().tzinfo
    start, end = report_range(report=report, today=now.astimezone(tz).date())
    departments = list(report.departments.order_by("name").values_list("pk", "name"))
    department_ids = [pk for pk, _ in departments] or None
    # Recipients read it without the schedule beside them: say whose figures these are.
    scope_label = (
        "Departments: " + ", ".join(name for _, name in departments)
        if departments
        else "All departments of the report's owner"
    )
    scope = {"user": report.owner, "start": start, "end": end, "department_ids": department_ids}
    sections = report.sections or ["headlines", "daily", "agents"]
    figures = selectors.summary(**scope)
    daily = selectors.daily_series(**scope)
    agents = selectors.agent_table(**scope) if "agents" in sections else []
    context = {
        "report": report,
        "scope_label": scope_label,
        "start": start,
        "end": end,
        "sections": sections,
        "figures": figures,
        "daily": daily,
        "agents": agents,
    }
    message = EmailMultiAlternatives(
        subject=f"{report.name}: {start} to {end}",
        body=render_to_string("reporting/email/report.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=report.recipient_list(),
    )
    message.attach_alternative(
        render_to_string("reporting/email/report.html", context), "text/html"
    )
    if "daily" in sections:
        png = bar_chart_png(
            labels=[d["day"] for d in daily],
            values=[d["chats"] for d in daily],
            title="Chats per day",
        )
        image = MIMEImage(png, "png")
        image.add_header("Content-ID", "<chart-daily>")
        image.add_header("Content-Disposition", "inline", filename="chats-per-day.png")
        message.mixed_subtype = "related"
        message.attach(image)
    return message


MAX_ATTEMPTS = 4  # the first send and three retries, as the Celery task
RETRY_SECONDS = 60  # then 120, 180: the wait grows with each attempt


def send_report(
    *, report_id: int, attempt: int = 1, now: dt.datetime | None = None
) -> MetricReportSend:
    """Send one report now and record the attempt; the exception propagates so the task retries."""
    now = now or timezone.now()
    report = MetricReport.objects.select_related("owner").get(pk=report_id)
    record = MetricReportSend.objects.create(
        report=report,
        attempted_at=now,
        recipients=", ".join(report.recipient_list()),
        attempt=attempt,
    )
    try:
        build_message(report=report, now=now).send()
    except Exception as exc:
        record.error = f"{type(exc).__name__}: {exc}"
        record.save(update_fields=["error"])
        raise
    record.success = True
    record.save(update_fields=["success"])
    MetricReport.objects.filter(pk=report.pk).update(last_run_at=now)
    return record


def due_reports(*, now: dt.datetime) -> list[int]:
    """Reports whose crontab came due since their last run (for the embedded default)."""
    tz = ReportingSettings.load().tzinfo
    due = []
    for report in MetricReport.objects.filter(enabled=True).only(
        "pk", "frequency", "cron", "last_run_at"
    ):
        minute, hour, dom, month, dow = parse_cron(cron_of(report))
        local_now = now.astimezone(tz)
        schedule = crontab(
            minute=minute,
            hour=hour,
            day_of_month=dom,
            month_of_year=month,
            day_of_week=dow,
            nowfun=lambda local_now=local_now: local_now,
        )
        last = report.last_run_at or (now - dt.timedelta(days=1))
        if schedule.is_due(last.astimezone(tz)).is_due:
            due.append(report.pk)
    return due


def _send_claimed(*, report_id: int, attempt: int, now: dt.datetime) -> bool:
    """Send; on failure schedule the next attempt (if any is left). True if it was sent."""
    try:
        send_report(report_id=report_id, attempt=attempt, now=now)
    except Exception:  # noqa: BLE001 - any failure is retried; send_report recorded it on the report's page
        if attempt < MAX_ATTEMPTS:
            MetricReport.objects.filter(pk=report_id).update(
                next_retry_at=now + dt.timedelta(seconds=RETRY_SECONDS * attempt),
                retry_attempt=attempt + 1,
            )
        return False
    return True


def send_now(*, report_id: int, now: dt.datetime) -> bool:
    """The admin's "Send now" in the embedded default: sent at once, retried if it fails."""
    return _send_claimed(report_id=report_id, attempt=1, now=now)


def send_due(*, now: dt.datetime) -> dict[str, int]:
    """The embedded default's beat: send every report that came due and every retry that is due.

    Each run is claimed first with a conditional update (last_run_at, next_retry_at), so
    another process doing the same at the same moment skips it: no report goes out twice.
    """
    sent = failed = 0
    for report_id in due_reports(now=now):
        last = MetricReport.objects.values_list("last_run_at", flat=True).get(pk=report_id)
        claimed = MetricReport.objects.filter(pk=report_id, last_run_at=last)
        if last is None:
            claimed = MetricReport.objects.filter(pk=report_id, last_run_at__isnull=True)
        # A new run replaces any retry still pending for the previous one.
        if not claimed.update(last_run_at=now, next_retry_at=None, retry_attempt=0):
            continue
        if _send_claimed(report_id=report_id, attempt=1, now=now):
            sent += 1
        else:
            failed += 1
    for report_id, retry_at, attempt in MetricReport.objects.filter(
        enabled=True, next_retry_at__lte=now
    ).values_list("pk", "next_retry_at", "retry_attempt"):
        if not MetricReport.objects.filter(pk=report_id, next_retry_at=retry_at).update(
            next_retry_at=None
        ):
            continue
        if _send_claimed(report_id=report_id, attempt=attempt, now=now):
            sent += 1
        else:
            failed += 1
    return {"sent": sent, "failed": failed}
