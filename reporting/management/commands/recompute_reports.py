"""Rebuild the reporting tables for a range of local days: `recompute_reports 2026-01-01 2026-01-31`."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from reporting import services


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"“{value}” is not a date in the form YYYY-MM-DD") from None


class Command(BaseCommand):
    help = "Recompute reporting rollups for the local days START..END (inclusive; END defaults to START)."

    def add_arguments(self, parser):
        parser.add_argument("start")
        parser.add_argument("end", nargs="?")

    def handle(self, *args, start: str, end: str | None, **options):
        first = _date(start)
        last = _date(end) if end else first
        if last < first:
            raise CommandError(f"the range runs backwards: {last} is before {first}")
        services.recompute_days(start=first, end=last)
        self.stdout.write(f"Recomputed {(last - first).days + 1} day(s), {first} to {last}.")
