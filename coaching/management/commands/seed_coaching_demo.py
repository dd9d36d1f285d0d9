"""Coaching demo data, run by seed_demo: a sampling rule, a scorecard, a training scenario."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from coaching.models import Criterion, SamplingRule, Scenario, Scorecard

RULE = "Rated 2 or less, and 10 % of the rest"
CRITERIA = [
    ("Greeted the visitor by name", Criterion.Kind.YES_NO, 1),
    ("Understood the problem before answering", Criterion.Kind.SCALE, 2),
    ("Solved it or gave a clear next step", Criterion.Kind.SCALE, 3),
    ("Closed politely and checked for anything else", Criterion.Kind.YES_NO, 1),
]


class Command(BaseCommand):
    help = "Create the coaching demo rule, scorecard and scenario (safe to run again)."

    @transaction.atomic
    def handle(self, *args, **options):
        rule, created = SamplingRule.objects.get_or_create(
            name=RULE,
            defaults={"mode": SamplingRule.Mode.LOW_SCORE, "score": 2, "percent_of_rest": 10},
        )
        if created:
            rule.full_clean()
            rule.reviewers.set(get_user_model().objects.filter(username="supervisor"))
        card, _ = Scorecard.objects.get_or_create(name="Service basics")
        for position, (label, kind, weight) in enumerate(CRITERIA, start=1):
            Criterion.objects.get_or_create(
                scorecard=card,
                label=label,
                defaults={"kind": kind, "weight": weight, "position": position},
            )
        Scenario.objects.get_or_create(
            title="Charged twice for one appointment",
            defaults={
                "opening_line": "You took the fee for my appointment twice and nobody answers the phone!",
                "persona": "Upset but polite; calms down once the agent names a concrete next step "
                "and a date for the refund.",
                "supervisor_notes": "Look for empathy before the refund steps, and no promise of a "
                "refund date the agent cannot keep.",
            },
        )
        self.stdout.write(self.style.SUCCESS("Coaching demo data ready."))
