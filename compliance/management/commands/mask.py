"""Try the active masking rules: `echo "card 4111 1111 1111 1111" | manage.py mask`."""

from __future__ import annotations

import sys
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser

from compliance import services


class Command(BaseCommand):
    help = "Read text on standard input and write it masked with the active rules."
    # call_command("mask", stdin=io.StringIO(...)) in tests, as Django's createsuperuser does.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--department", metavar="SLUG", help="apply this department's rules too"
        )
        parser.add_argument(
            "--archive",
            action="store_true",
            help="use the rules switched on for the archive instead of live",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        department_id = None
        if options["department"]:
            # A model reference, not an import: compliance does not import chat's modules.
            department = apps.get_model("chat", "Department")
            department_id = (
                department.objects.filter(slug=options["department"])
                .values_list("pk", flat=True)
                .first()
            )
            if department_id is None:
                raise CommandError(f"No department with the slug {options['department']!r}.")
        text = (options.get("stdin") or sys.stdin).read()
        mask = services.mask_for_archive if options["archive"] else services.mask_live
        self.stdout.write(mask(text, department_id=department_id), ending="")
