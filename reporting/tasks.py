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
