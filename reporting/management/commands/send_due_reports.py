"""Send the metric e-mails that are due now (and due retries), once.

The embedded default's server does this every 30 seconds by itself (reporting/scheduler.py);
this command is for running it by hand, or from cron when the server runs with
REPORTING_INPROCESS_SCHEDULER=false.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.utils import timezone

from reporting import schedules


class Command(BaseCommand):
    help = "Send scheduled metric e-mails whose schedule (or retry) came due."

    def handle(self, *args, **options):
        done = schedules.send_due(now=timezone.now())
        self.stdout.write(f"{done['sent']} sent, {done['failed']} failed.")
