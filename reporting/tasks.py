"""Celery entry points of reporting; each takes ids or dates and calls one service."""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from reporting import services


@shared_task(name="reporting.tasks.refresh_today", ignore_result=True)
def refresh_today() -> None:
    """Beat runs this every few minutes: today's (and yesterday's) figures stay fresh."""
    services.recompute_today()


@shared_task(name="reporting.tasks.refresh_conversation_day", ignore_result=True, max_retries=5)
def refresh_conversation_day(conversation_id: int) -> None:
    """A chat ended or a late survey arrived: rebuild the local day the chat belongs to."""
    services.recompute_conversation_day(conversation_id=conversation_id)


@shared_task(name="reporting.tasks.recompute_range", ignore_result=True)
def recompute_range(start: str, end: str) -> None:
    services.recompute_days(start=dt.date.fromisoformat(start), end=dt.date.fromisoformat(end))


@shared_task(
    name="reporting.tasks.send_metric_report",
    bind=True,
    ignore_result=True,
    max_retries=3,
    default_retry_delay=60,
)
def send_metric_report(self, report_id: int) -> None:
    """Beat fires this on the report's crontab; a failed send is recorded and retried."""
    from reporting import schedules

    try:
        schedules.send_report(report_id=report_id, attempt=self.request.retries + 1)
    except Exception as exc:
        if self.request.retries >= self.max_retries or self.request.is_eager:
            raise
        raise self.retry(exc=exc) from exc
