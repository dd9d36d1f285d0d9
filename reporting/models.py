"""Reporting: the organisation's reporting settings and the rollup tables the dashboard reads.

Every table here is derived from chat's models and can be rebuilt at any time with
`manage.py recompute_reports`; docs/metrics.md defines each figure. Days are local dates in the
organisation's time zone (ReportingSettings), not UTC dates.
"""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from chat.models import AgentProfile, Conversation, Department


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"“{value}” is not a known time zone (use a name such as Europe/Berlin)."
        ) from None


class ReportingSettings(models.Model):
    """A singleton (pk=1) edited in admin: which time zone a reporting day follows."""

    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="Reporting days run from midnight to midnight in this time zone, e.g. Europe/Berlin.",
    )
    max_range_days = models.PositiveIntegerField(
        default=400, help_text="Longest date range the dashboard accepts in one request."
    )
    # Raised by every recompute; each recomputed day takes the new value (ReportingDay).
    data_version = models.PositiveBigIntegerField(default=0, editable=False)

    class Meta:
        verbose_name = "reporting settings"
        verbose_name_plural = "reporting settings"
        constraints = [
            models.CheckConstraint(condition=models.Q(pk=1), name="reporting_settings_singleton")
        ]

    def __str__(self) -> str:
        return "Reporting settings"

    @classmethod
    def load(cls) -> ReportingSettings:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


# The tables below are derived and rebuilt wholesale by reporting.services.recompute_days, in one
# transaction, from rows it has just joined: their foreign keys have no database constraint
# (db_constraint=False). PostgreSQL checks a deferred constraint once per inserted row at commit,
# which was seconds of a year's recompute; Django's on_delete=CASCADE still removes a deleted
# conversation's, department's or agent's rows (it is done by the ORM, not the database).


class ConversationFact(models.Model):
    """One row per non-training conversation: its figures, on the local day it was created.

    Percentiles (median, p90) cannot be summed from daily rollups, so they are read from here.
    The durations are NULL where the chat never reached that step (a missed chat has no wait).
    """

    conversation = models.OneToOneField(
        Conversation,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="+",
        db_constraint=False,
    )
    day = models.DateField()
    hour = models.PositiveSmallIntegerField()
    department = models.ForeignKey(
        Department, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    agent = models.ForeignKey(
        AgentProfile,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )
    status = models.CharField(max_length=10)
    wait = models.DurationField(null=True)
    first_response = models.DurationField(null=True)
    session = models.DurationField(null=True)
    handle = models.DurationField(null=True)
    transfers = models.PositiveIntegerField(default=0)
    canned_uses = models.PositiveIntegerField(default=0)
    tickets = models.PositiveIntegerField(default=0)
    rating = models.PositiveSmallIntegerField(null=True)
    proactive = models.BooleanField(default=False)
    # Coaching's scored reviews of this chat: how many, and the sum of their scores (0-100 each).
    qa_count = models.PositiveIntegerField(default=0)
    qa_score_sum = models.FloatField(default=0)

    class Meta:
        indexes = [models.Index(fields=["day", "department", "agent"])]


class ReportingDay(models.Model):
    """When each local day's rows were last rebuilt, as a version number that only grows.

    The dashboard caches figures under the highest version among the range's days: recomputing
    any day of a range (a chat ended, a late survey, beat's refresh) gives it a new key.
    """

    day = models.DateField(primary_key=True)
    version = models.PositiveBigIntegerField()


class DailyRollup(models.Model):
    """Sums and counts per local day × department × agent (agent NULL: nobody accepted it)."""

    day = models.DateField()
    department = models.ForeignKey(
        Department, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    agent = models.ForeignKey(
        AgentProfile,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )
    chats = models.PositiveIntegerField(default=0)
    missed = models.PositiveIntegerField(default=0)
    abandoned = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    wait_count = models.PositiveIntegerField(default=0)
    wait_sum = models.DurationField(null=True)
    first_response_count = models.PositiveIntegerField(default=0)
    first_response_sum = models.DurationField(null=True)
    session_count = models.PositiveIntegerField(default=0)
    session_sum = models.DurationField(null=True)
    handle_count = models.PositiveIntegerField(default=0)
    handle_sum = models.DurationField(null=True)
    ended = models.PositiveIntegerField(
        default=0, help_text="Accepted chats that have ended: surveys were possible."
    )
    surveys = models.PositiveIntegerField(default=0)
    rating_sum = models.PositiveIntegerField(default=0)
    satisfied = models.PositiveIntegerField(default=0, help_text="Surveys rated 4 or 5.")
    transfers = models.PositiveIntegerField(default=0)
    tickets = models.PositiveIntegerField(default=0)
    canned_uses = models.PositiveIntegerField(default=0)
    proactive_chats = models.PositiveIntegerField(default=0)
    # Coaching's scored reviews of the day's chats (docs/metrics.md, "QA score").
    qa_count = models.PositiveIntegerField(default=0)
    qa_score_sum = models.FloatField(default=0)

    class Meta:
        indexes = [models.Index(fields=["day", "department", "agent"])]


class HourlyVolume(models.Model):
    """Chats per local day × department × hour of day (0-23)."""

    day = models.DateField()
    department = models.ForeignKey(
        Department, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    hour = models.PositiveSmallIntegerField()
    chats = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "department", "hour"], name="hourly_volume_unique"
            )
        ]


class InvitationRollup(models.Model):
    """Proactive invitations per local day (of sending) × department."""

    day = models.DateField()
    department = models.ForeignKey(
        Department, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    sent = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    declined = models.PositiveIntegerField(default=0)
    chats = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "department"], name="invitation_rollup_unique")
        ]


class AgentOccupancy(models.Model):
    """Seconds of one agent's online time on one local day, by number of concurrent chats."""

    day = models.DateField()
    agent = models.ForeignKey(
        AgentProfile, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    online_seconds = models.PositiveIntegerField(default=0)
    seconds_0 = models.PositiveIntegerField(default=0)
    seconds_1 = models.PositiveIntegerField(default=0)
    seconds_2 = models.PositiveIntegerField(default=0)
    seconds_3plus = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "agent"], name="agent_occupancy_unique")
        ]


class MetricReport(models.Model):
    """A scheduled metric e-mail; its timing lives in a django-celery-beat PeriodicTask it owns."""

    class Frequency(models.TextChoices):
        DAILY = "daily", "Daily (yesterday's figures, at 07:00)"
        WEEKLY = "weekly", "Weekly (the last 7 days, Mondays at 07:00)"
        MONTHLY = "monthly", "Monthly (the previous month, on the 1st at 07:00)"
        CRON = "cron", "Cron expression (the last 7 days)"

    SECTION_CHOICES = (
        ("headlines", "Headline figures"),
        ("daily", "Chats per day"),
        ("agents", "Agents"),
    )

    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    recipients = models.TextField(help_text="E-mail addresses, separated by commas or new lines.")
    frequency = models.CharField(max_length=10, choices=Frequency.choices, default=Frequency.WEEKLY)
    cron = models.CharField(
        max_length=100,
        blank=True,
        help_text="Five fields: minute hour day-of-month month day-of-week.",
    )
    departments = models.ManyToManyField(
        Department,
        blank=True,
        related_name="+",
        help_text="None selected: every department the owner may see.",
    )
    sections = models.JSONField(default=list, blank=True)
    # Figures are computed with this user's access: a report never shows more than its owner may see.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    # Embedded default (reporting/scheduler.py): a failed send is tried again at this time, as
    # attempt `retry_attempt` (in real mode the Celery task retries itself).
    next_retry_at = models.DateTimeField(null=True, blank=True, editable=False)
    retry_attempt = models.PositiveSmallIntegerField(default=0, editable=False)

    def __str__(self) -> str:
        return self.name

    def recipient_list(self) -> list[str]:
        return [a.strip() for a in self.recipients.replace("\n", ",").split(",") if a.strip()]


class MetricReportSend(models.Model):
    """One attempt to send a report: when, to whom, and whether it worked (failures are retried)."""

    report = models.ForeignKey(MetricReport, on_delete=models.CASCADE, related_name="sends")
    attempted_at = models.DateTimeField()
    recipients = models.TextField()
    attempt = models.PositiveSmallIntegerField(default=1)
    success = models.BooleanField(default=False)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-attempted_at", "-pk"]
