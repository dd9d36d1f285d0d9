"""Embedded default: send the metric e-mails that are due. Run every minute from cron/systemd."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.utils import timezone

from reporting import schedules


class Command(BaseCommand):
    help = "Send scheduled metric e-mails whose schedule came due since their last run."

    def handle(self, *args, **options):
        sent = failed = 0
        for report_id in schedules.due_reports(now=timezone.now()):
            try:
                schedules.send_report(report_id=report_id)
                sent += 1
            except Exception as exc:  # noqa: BLE001  (logged on the report; carry on with the others)
                self.stderr.write(f"report {report_id} failed: {exc}")
                failed += 1
        self.stdout.write(f"{sent} sent, {failed} failed.")
