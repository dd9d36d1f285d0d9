"""Which ended chats enter a reviewer's queue, evaluated at chat end and again on a late survey."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from chat import hooks
from chat import services as chat_services
from chat.models import CannedResponse, Conversation, SurveyResponse
from coaching import services
from coaching.models import Review, SamplingRule
from tests.coaching.conftest import ended_chat
from tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db


def sampled(rule: SamplingRule) -> set[int]:
    return set(Review.objects.filter(rule=rule).values_list("conversation_id", flat=True))


def sample_all(conversations) -> None:
    for c in conversations:
        services.sample_conversation(conversation_id=c.pk)


# The hash of (rule id, conversation id) decides; rule 7 at 25 % over chats 1001..1040 picks
# exactly these, today, tomorrow and on every machine.
EXPECTED_RULE_7_25_PERCENT = {
    1001,
    1003,
    1008,
    1009,
    1010,
    1011,
    1013,
    1014,
    1015,
    1016,
    1025,
    1028,
    1033,
    1036,
}
# Rule 3 at 10 % over chats 2001..2030.
EXPECTED_RULE_3_10_PERCENT = {2005, 2012}


def test_random_share_is_reproducible_with_an_exact_expected_set(agent, department, make_rule):
    rule = make_rule(pk=7, mode=SamplingRule.Mode.RANDOM, percent=25)
    chats = [ended_chat(pk=pk, agent=agent, department=department) for pk in range(1001, 1041)]
    sample_all(chats)
    assert sampled(rule) == EXPECTED_RULE_7_25_PERCENT
    # Evaluated again (the survey arrives, a task is retried): nothing enters twice.
    sample_all(chats)
    assert Review.objects.filter(rule=rule).count() == len(EXPECTED_RULE_7_25_PERCENT)


def test_a_conversation_enters_once_per_rule_by_constraint(
    agent, department, make_rule, supervisor
):
    rule = make_rule(mode=SamplingRule.Mode.ALL)
    chat = ended_chat(agent=agent, department=department)
    [review] = services.sample_conversation(conversation_id=chat.pk)
    assert review.reviewer == supervisor and review.agent == agent
    with pytest.raises(IntegrityError), transaction.atomic():
        Review.objects.create(
            conversation=chat,
            rule=rule,
            reviewer=supervisor,
            agent=agent,
            created_at=review.created_at,
        )


def test_training_chats_are_never_sampled(agent, department, make_rule):
    rule = make_rule(mode=SamplingRule.Mode.ALL)
    mock = ended_chat(agent=agent, department=department, is_training=True, rating=1)
    real = ended_chat(agent=agent, department=department)
    sample_all([mock, real])
    assert sampled(rule) == {real.pk}


def test_scope_by_department_and_agent(
    agent, second_agent, department, other_department, make_rule
):
    second_agent.departments.add(other_department)
    by_department = make_rule(
        name="Billing", mode=SamplingRule.Mode.ALL, departments=[other_department]
    )
    by_agent = make_rule(name="Bob", mode=SamplingRule.Mode.ALL, agents=[second_agent])
    a = ended_chat(agent=agent, department=department)
    b = ended_chat(agent=second_agent, department=department)
    c = ended_chat(agent=second_agent, department=other_department)
    sample_all([a, b, c])
    assert sampled(by_department) == {c.pk}
    assert sampled(by_agent) == {b.pk, c.pk}


def test_extra_conditions_transferred_wait_and_canned(agent, department, make_rule):
    canned = CannedResponse.objects.create(title="Greeting", shortcut="greeting", body="Hello")
    transferred = make_rule(name="T", mode=SamplingRule.Mode.ALL, only_transferred=True)
    slow = make_rule(name="W", mode=SamplingRule.Mode.ALL, min_wait_seconds=60)
    used = make_rule(name="C", mode=SamplingRule.Mode.ALL, canned_response=canned)
    plain = ended_chat(agent=agent, department=department, waited=60)  # exactly 60 s is not longer
    moved = ended_chat(agent=agent, department=department, transferred=True)
    waited = ended_chat(agent=agent, department=department, waited=61)
    greeted = ended_chat(agent=agent, department=department, canned_id=canned.pk)
    sample_all([plain, moved, waited, greeted])
    assert sampled(transferred) == {moved.pk}
    assert sampled(slow) == {waited.pk}
    assert sampled(used) == {greeted.pk}


def test_daily_cap_stops_the_rule_for_the_day(agent, department, make_rule):
    rule = make_rule(mode=SamplingRule.Mode.ALL, daily_cap=3)
    chats = [ended_chat(agent=agent, department=department) for _ in range(5)]
    sample_all(chats)
    assert sampled(rule) == {c.pk for c in chats[:3]}


def test_reviews_are_spread_over_the_rules_reviewers(
    agent, department, make_rule, supervisor, lead
):
    rule = make_rule(mode=SamplingRule.Mode.ALL, reviewers=[supervisor, lead])
    sample_all([ended_chat(agent=agent, department=department) for _ in range(4)])
    counts = {u: Review.objects.filter(rule=rule, reviewer=u).count() for u in (supervisor, lead)}
    assert counts == {supervisor: 2, lead: 2}


def test_low_score_rule_with_share_of_the_rest_on_end_and_on_late_survey(
    agent, department, make_rule, django_capture_on_commit_callbacks, tasks_run_inline
):
    """The demo rule: every chat rated 2 or less, and 10 % of the rest, through the real hooks."""
    rule = make_rule(pk=3, mode=SamplingRule.Mode.LOW_SCORE, score=2, percent_of_rest=10)
    chats = []
    for pk in range(2001, 2031):
        chat = ConversationFactory(
            pk=pk, department=department, agent=agent, status=Conversation.Status.ACTIVE
        )
        with django_capture_on_commit_callbacks(execute=True):
            chat_services.end_conversation(
                conversation_id=chat.pk, ended_by=Conversation.EndedBy.AGENT
            )
        chats.append(chat)
    random_part = {
        c.pk for c in chats if services.in_random_share(rule_id=3, conversation_id=c.pk, percent=10)
    }
    assert sampled(rule) == random_part == EXPECTED_RULE_3_10_PERCENT
    # Late surveys: a 2 brings its chat in, a 3 does not, a 1 already in stays in once.
    low, fine = [c for c in chats if c.pk not in random_part][:2]
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        SurveyResponse.objects.create(conversation=low, rating=2, submitted_at=low.created_at)
        hooks.survey_submitted_on_commit(low.pk)
        SurveyResponse.objects.create(conversation=fine, rating=3, submitted_at=fine.created_at)
        hooks.survey_submitted_on_commit(fine.pk)
    assert sampled(rule) == random_part | {low.pk}


def test_high_score_rule(agent, department, make_rule):
    rule = make_rule(mode=SamplingRule.Mode.HIGH_SCORE, score=5)
    top = ended_chat(agent=agent, department=department, rating=5)
    good = ended_chat(agent=agent, department=department, rating=4)
    unrated = ended_chat(agent=agent, department=department)
    sample_all([top, good, unrated])
    assert sampled(rule) == {top.pk}


def test_missed_chats_without_agent_are_not_sampled(department, make_rule):
    rule = make_rule(mode=SamplingRule.Mode.ALL)
    chat = ConversationFactory(department=department, status=Conversation.Status.MISSED)
    services.sample_conversation(conversation_id=chat.pk)
    assert sampled(rule) == set()


def test_a_chat_goes_only_to_reviewers_who_oversee_its_department(
    agent, department, other_department, make_rule, lead, supervisor
):
    """A rule for every department with a supervisor per department: each gets its own chats;
    a chat no reviewer of the rule oversees is not queued by it."""
    from tests.factories import AgentFactory, UserFactory, give_role

    bill = give_role(UserFactory(username="bill"), "Supervisor")
    AgentFactory(user=bill, display_name="Bill Lead", departments=[other_department])
    billing_agent = AgentFactory(user=UserFactory(username="bob"), departments=[other_department])
    rule = make_rule(mode=SamplingRule.Mode.ALL, reviewers=[lead, bill])
    support_chats = [ended_chat(agent=agent, department=department) for _ in range(2)]
    billing_chats = [ended_chat(agent=billing_agent, department=other_department) for _ in range(2)]
    sample_all(support_chats + billing_chats)

    def mine(user) -> set[int]:
        return set(
            Review.objects.filter(rule=rule, reviewer=user).values_list("conversation_id", flat=True)
        )

    assert mine(lead) == {c.pk for c in support_chats}
    assert mine(bill) == {c.pk for c in billing_chats}

    only_lena = make_rule(name="Lena only", mode=SamplingRule.Mode.ALL, reviewers=[lead])
    sample_all(billing_chats)
    assert not Review.objects.filter(rule=only_lena).exists()


def test_a_supervisor_moved_off_a_department_no_longer_sees_its_reviews(
    agent, department, make_rule, lead
):
    from coaching import selectors

    make_rule(mode=SamplingRule.Mode.ALL, reviewers=[lead])
    chat = ended_chat(agent=agent, department=department)
    sample_all([chat])
    assert selectors.reviews_for_supervisor(user=lead).count() == 1
    lead.agent.departments.remove(department)
    assert selectors.reviews_for_supervisor(user=lead).count() == 0
