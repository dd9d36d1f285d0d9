"""A few weeks of generated chat history for the demo dashboard (skipped when already there)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from reporting import demo


class Command(BaseCommand):
    help = "Generate a few weeks of demo chat history and compute its reports (once)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=21)
        parser.add_argument("--chats-per-day", type=int, default=40)

    def handle(self, *args, days: int, chats_per_day: int, **options):
        if demo.has_history():
            self.stdout.write("Demo history already present.")
            return
        n = demo.generate_history(days=days, chats_per_day=chats_per_day)
        self.stdout.write(self.style.SUCCESS(f"Generated {n} demo chats over {days} days."))
