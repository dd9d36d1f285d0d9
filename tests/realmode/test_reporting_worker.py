"""A real Celery worker on Redis sends a scheduled metric e-mail and records the send."""

from __future__ import annotations

import time

import pytest

from reporting.models import MetricReport, MetricReportSend
from reporting.schedules import sync_schedule
from reporting.tasks import send_metric_report
from tests.factories import UserFactory
from tests.realmode.test_celery_worker import worker_queue  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.realmode, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def realmode_env(realmode_env, tmp_path):
    # The worker writes e-mails to files this test can read.
    return {
        **realmode_env,
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path),
    }


def test_worker_sends_the_report_and_logs_it(worker_queue, realmode_env, tmp_path):  # noqa: F811
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
