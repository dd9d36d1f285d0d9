"""Scheduled metric e-mails: admin validation, the beat schedule, the message, the send log."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django_celery_beat.models import PeriodicTask

from reporting import schedules, services
from reporting.models import MetricReport, MetricReportSend
from tests.auth import staff_client
from tests.factories import UserFactory
from tests.reporting import scenario
from tests.reporting.scenario import DAY

ADD_URL = "/admin/reporting/metricreport/add/"


@pytest.fixture
def boss(db):
    return UserFactory(username="sam", is_superuser=True)


def _form(**overrides):
    data = {
        "name": "Weekly support",
        "enabled": "on",
        "recipients": "lead@example.com, ops@example.com",
        "frequency": "cron",
        "cron": "30 6 * * 1-5",
        "sections": ["headlines", "daily"],
        "sends-TOTAL_FORMS": "0",
        "sends-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def test_saving_a_report_creates_its_beat_schedule(boss):
    response = staff_client(boss).post(ADD_URL, _form())
    assert response.status_code == 302, response.content.decode()[:2000]
    report = MetricReport.objects.get()
    assert report.owner == boss
    task = PeriodicTask.objects.get(pk=report.periodic_task_id)
    assert task.task == "reporting.tasks.send_metric_report" and task.args == f"[{report.pk}]"
    c = task.crontab
    assert (c.minute, c.hour, c.day_of_month, c.month_of_year, c.day_of_week) == (
        "30",
        "6",
        "*",
        "*",
        "1-5",
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cron": "61 * * * *"}, "The minute field “61” is not valid"),
        ({"cron": "* * *"}, "A cron expression has 5 fields"),
        ({"cron": ""}, "Give a cron expression"),
        (
            {"recipients": "lead@example.com, not-an-address"},
            "“not-an-address” is not a valid e-mail address.",
        ),
    ],
)
def test_invalid_cron_or_address_is_a_form_error_and_nothing_is_saved(boss, overrides, message):
    response = staff_client(boss).post(ADD_URL, _form(**overrides))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert (
        not MetricReport.objects.exists()
        and not PeriodicTask.objects.filter(name__startswith="metric-").exists()
    )


def test_sent_report_has_html_inline_chart_and_text_and_is_logged(db, boss):
    scenario.build()
    services.recompute_days(start=DAY, end=DAY)
    report = MetricReport.objects.create(
        name="Daily", recipients="lead@example.com", frequency="daily", owner=boss, sections=[]
    )
    record = schedules.send_report(
        report_id=report.pk, now=dt.datetime(2026, 3, 11, 7, 0, tzinfo=dt.UTC)
    )
    assert record.success and record.recipients == "lead@example.com"
    (message,) = mail.outbox
    assert message.to == ["lead@example.com"]
    assert message.subject == "Daily: 2026-03-10 to 2026-03-10"
    assert "Chats: 7 (missed 1, abandoned 1)" in message.body
    assert "CSAT (4 and 5): 67 %" in message.body
    assert "QA score (coaching): 76.5" in message.body
    assert "Bob Agent: 2 chats, CSAT 50 %, QA 68.0" in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and 'src="cid:chart-daily"' in html
    assert "QA score (coaching)" in html and "Bob Agent" in html
    raw = message.message().as_bytes()
    assert b"Content-ID: <chart-daily>" in raw and b"image/png" in raw


def test_a_failed_send_is_recorded(db, boss, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 1  # nothing listens there
    report = MetricReport.objects.create(
        name="Daily", recipients="lead@example.com", frequency="daily", owner=boss
    )
    with pytest.raises(OSError):
        schedules.send_report(report_id=report.pk)
    record = MetricReportSend.objects.get()
    assert not record.success and "ConnectionRefusedError" in record.error
    report.refresh_from_db()
    assert report.last_run_at is None


def test_embedded_default_sends_due_reports_once(db, boss):
    report = MetricReport.objects.create(
        name="Daily", recipients="lead@example.com", frequency="daily", owner=boss
    )
    now = dt.datetime(2026, 3, 11, 7, 0, 30, tzinfo=dt.UTC)
    report.last_run_at = now - dt.timedelta(days=1, minutes=1)
    report.save(update_fields=["last_run_at"])
    assert schedules.due_reports(now=now) == [report.pk]
    schedules.send_report(report_id=report.pk, now=now)
    assert schedules.due_reports(now=now) == []


def test_the_embedded_scheduler_sends_a_due_report_once_and_retries_failures(
    db, boss, settings, mailoutbox
):
    """What the server's scheduler thread does every 30 s (reporting/scheduler.py)."""
    from reporting import scheduler

    report = MetricReport.objects.create(
        name="Daily", recipients="lead@example.com", frequency="daily", owner=boss
    )
    seven = dt.datetime(2026, 3, 11, 7, 0, 10, tzinfo=dt.UTC)
    report.last_run_at = seven - dt.timedelta(days=1)  # yesterday's run
    report.save(update_fields=["last_run_at"])
    assert scheduler.tick(now=seven - dt.timedelta(minutes=5)) == {"sent": 0, "failed": 0}
    # Due at 07:00: the SMTP server is down, so the send fails, is recorded, and a retry waits.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 1
    assert scheduler.tick(now=seven) == {"sent": 0, "failed": 1}
    report.refresh_from_db()
    assert report.next_retry_at == seven + dt.timedelta(seconds=60) and report.retry_attempt == 2
    # Not due again before the retry time, and the run itself is not sent twice.
    assert scheduler.tick(now=seven + dt.timedelta(seconds=30)) == {"sent": 0, "failed": 0}
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert scheduler.tick(now=seven + dt.timedelta(seconds=61)) == {"sent": 1, "failed": 0}
    assert [(s.attempt, s.success) for s in MetricReportSend.objects.order_by("pk")] == [
        (1, False),
        (2, True),
    ]
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["lead@example.com"]
    report.refresh_from_db()
    assert report.next_retry_at is None
    assert scheduler.tick(now=seven + dt.timedelta(hours=1)) == {"sent": 0, "failed": 0}
    # The next day at 07:00 the next run goes out.
    assert scheduler.tick(now=seven + dt.timedelta(days=1)) == {"sent": 1, "failed": 0}


def test_retries_stop_after_the_fourth_attempt(db, boss, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 1
    report = MetricReport.objects.create(
        name="Daily", recipients="lead@example.com", frequency="daily", owner=boss
    )
    now = dt.datetime(2026, 3, 11, 7, 0, 10, tzinfo=dt.UTC)
    report.last_run_at = now - dt.timedelta(days=1, minutes=1)
    report.save(update_fields=["last_run_at"])
    for minutes in (0, 2, 5, 9, 15):
        schedules.send_due(now=now + dt.timedelta(minutes=minutes))
    assert [s.attempt for s in MetricReportSend.objects.order_by("pk")] == [1, 2, 3, 4]
    report.refresh_from_db()
    assert report.next_retry_at is None


def test_the_server_starts_the_scheduler_thread_in_the_embedded_default(settings, monkeypatch):
    from reporting import scheduler

    monkeypatch.setattr(scheduler, "_thread", None)
    started = []
    monkeypatch.setattr(scheduler, "_loop", lambda: started.append(True))
    settings.REPORTING_INPROCESS_SCHEDULER = False  # real mode, or tests
    assert scheduler.start() is False
    settings.REPORTING_INPROCESS_SCHEDULER = True
    monkeypatch.setattr(scheduler.sys, "argv", ["/srv/coachline/.venv/bin/daphne"])
    scheduler.start_with_server()
    scheduler._thread.join(5)
    assert started == [True]


def test_send_now_in_the_admin_reports_a_failure_instead_of_an_error_page(db, boss, settings):
    from tests.auth import staff_client

    settings.CELERY_TASK_ALWAYS_EAGER = True  # the embedded default (real mode queues the task)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 1
    report = MetricReport.objects.create(
        name="Daily", recipients="lead@example.com", frequency="daily", owner=boss
    )
    response = staff_client(boss).post(
        "/admin/reporting/metricreport/",
        {"action": "send_now", "_selected_action": [report.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "could not be sent" in response.content.decode()
    report.refresh_from_db()
    assert report.retry_attempt == 2 and report.next_retry_at is not None
    page = staff_client(boss).get(f"/admin/reporting/metricreport/{report.pk}/change/")
    assert "ConnectionRefusedError" in page.content.decode()
