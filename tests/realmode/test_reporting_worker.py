"""A real Celery worker on Redis sends a scheduled metric e-mail and records the send."""

from __future__ import annotations

import sys
import time

import pytest

from reporting.models import MetricReport, MetricReportSend
from reporting.schedules import sync_schedule
from reporting.tasks import send_metric_report
from tests.factories import UserFactory

pytestmark = [pytest.mark.realmode, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def realmode_env(realmode_env, tmp_path):
    # The worker writes e-mails to files this test can read.
    return {
        **realmode_env,
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path),
    }


def test_worker_sends_the_report_and_logs_it(worker_queue, realmode_env, tmp_path):
    boss = UserFactory(username="sam", is_superuser=True)
    report = MetricReport.objects.create(
        name="Weekly support", recipients="lead@example.com", frequency="weekly", owner=boss
    )
    sync_schedule(report=report)
    report.refresh_from_db()
    assert report.periodic_task.task == "reporting.tasks.send_metric_report"

    send_metric_report.delay(report.pk)

    deadline = time.monotonic() + 30
    while (
        not MetricReportSend.objects.filter(report=report).exists() and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    record = MetricReportSend.objects.filter(report=report).first()
    assert record is not None, (
        f"no send recorded in 30 s; {worker_queue.describe()}:\n{worker_queue.log_tail()}"
    )
    deadline = time.monotonic() + 10
    while not record.success and not record.error and time.monotonic() < deadline:
        time.sleep(0.2)
        record.refresh_from_db()
    assert record.success, record.error
    (mail_file,) = list(tmp_path.glob("*.log"))
    raw = mail_file.read_text()
    assert "To: lead@example.com" in raw and "Subject: Weekly support:" in raw
    assert "cid:chart-daily" in raw and "Content-Type: image/png" in raw


def test_beat_fires_the_schedule_edited_in_admin_and_the_worker_sends_it(
    worker_queue, realmode_env, tmp_path
):
    """The whole real-mode path: the report's PeriodicTask in the database, a real celery beat
    (django-celery-beat's DatabaseScheduler) that finds it due, a real worker that sends it."""
    from django.utils import timezone

    from tests.serverprocs import start_process, wait_until

    boss = UserFactory(username="sam", is_superuser=True)
    # Every minute (a cron expression), so the test need not wait for 07:00: django-celery-beat
    # only loads the crontab entries of the current hour.
    report = MetricReport.objects.create(
        name="Daily support",
        recipients="lead@example.com",
        frequency="cron",
        cron="* * * * *",
        owner=boss,
    )
    sync_schedule(report=report)
    report.refresh_from_db()
    task = report.periodic_task
    # Last fired an hour ago: due as soon as beat starts.
    task.last_run_at = timezone.now() - timezone.timedelta(hours=1)
    task.save(update_fields=["last_run_at"])
    queue = worker_queue.argv[worker_queue.argv.index("-Q") + 1]
    beat = start_process(
        "celery-beat",
        [
            sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
            "-s", str(tmp_path / "beat-schedule"),
        ],
        env={**realmode_env, "CELERY_TASK_DEFAULT_QUEUE": queue},
    )
    try:
        deadline = time.monotonic() + 60
        record = None
        while time.monotonic() < deadline:
            record = MetricReportSend.objects.filter(report=report, success=True).first()
            if record is not None:
                break
            time.sleep(0.5)
        assert record is not None, (
            f"no send in 60 s; beat:\n{beat.log_tail()}\nworker:\n{worker_queue.log_tail()}"
        )
        assert "Scheduler: Sending due task metric-report-" in beat.log_text()
        wait_until(
            lambda: list(tmp_path.glob("*.log")),
            timeout=10,
            process=worker_queue,
            what="the e-mail file",
        )
        raw = next(tmp_path.glob("*.log")).read_text()
        assert "To: lead@example.com" in raw and "Subject: Daily support:" in raw
    finally:
        beat.stop()
