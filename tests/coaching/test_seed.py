import pytest
from django.core.management import call_command

from coaching import services
from coaching.models import SamplingRule, Scenario, Scorecard

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_the_coaching_demo_and_runs_twice():
    call_command("seed_demo")
    call_command("seed_demo")
    rule = SamplingRule.objects.get()
    assert (rule.mode, rule.score, rule.percent_of_rest) == ("low_score", 2, 10)
    assert [u.username for u in rule.reviewers.all()] == ["supervisor"]
    assert Scorecard.objects.get().criteria.count() == 4
    assert Scenario.objects.count() == 1
    # 10 % of the rest: about one chat in ten, decided by the hash.
    share = sum(
        services.in_random_share(rule_id=rule.pk, conversation_id=c, percent=10)
        for c in range(1, 2001)
    )
    assert 150 <= share <= 250
