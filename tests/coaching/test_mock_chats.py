"""Mock chats: a supervisor plays a scenario's visitor; the chat is training and never sampled."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat import services as chat_services
from chat.models import AgentProfile, Conversation, Message
from coaching import services
from coaching.models import MockChat, Review, SamplingRule, Scenario
from tests.auth import staff_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def scenario():
    return Scenario.objects.create(
        title="Angry about a double charge",
        opening_line="You charged me twice and nobody answers the phone!",
        persona="Impatient; calms down when the agent names a concrete next step.",
        supervisor_notes="Look for empathy before the refund steps.",
    )


def test_mock_chat_to_an_offline_agent_is_refused_clearly(supervisor, agent, scenario):
    page = staff_client(supervisor).post(
        reverse("coaching:mock_chat"), {"scenario": scenario.pk, "agent": agent.pk}
    )
    assert page.status_code == 200
    assert "Alice Agent is not online with a free chat slot" in page.text
    assert not Conversation.objects.exists() and not MockChat.objects.exists()


def test_mock_chat_is_offered_to_the_agent_as_training_and_never_sampled(
    supervisor, agent, scenario, django_capture_on_commit_callbacks, tasks_run_inline
):
    AgentProfile.objects.filter(pk=agent.pk).update(presence=AgentProfile.Presence.ONLINE)
    SamplingRule.objects.create(name="All", mode=SamplingRule.Mode.ALL).reviewers.set([supervisor])
    page = staff_client(supervisor).post(
        reverse("coaching:mock_chat"), {"scenario": scenario.pk, "agent": agent.pk}
    )
    assert page.status_code == 200
    mock = MockChat.objects.select_related("conversation").get()
    chat = mock.conversation
    assert chat.is_training and chat.status == Conversation.Status.OFFERED and chat.agent == agent
    assert Message.objects.get(conversation=chat).body == scenario.opening_line
    # The supervisor's window becomes the visitor: the page carries the visitor token.
    assert 'data-token="' in page.text and scenario.persona in page.text
    from chat import assignment

    assignment.accept_offer(agent=agent, conversation_id=chat.pk)
    with django_capture_on_commit_callbacks(execute=True):
        chat_services.end_conversation(conversation_id=chat.pk, ended_by=Conversation.EndedBy.AGENT)
    assert not Review.objects.exists()


def test_mock_chat_needs_an_agent_or_a_department(supervisor, scenario, department):
    client = staff_client(supervisor)
    page = client.post(reverse("coaching:mock_chat"), {"scenario": scenario.pk})
    assert "Choose an agent or a department, not both." in page.text
    page = client.post(
        reverse("coaching:mock_chat"), {"scenario": scenario.pk, "department": department.pk}
    )
    assert "No agent of this department is online with a free chat slot" in page.text


def test_agents_cannot_start_mock_chats(scenario, db):
    from tests.factories import UserFactory

    visitor_like = UserFactory(username="nobody", is_staff=False)
    assert staff_client(visitor_like).get(reverse("coaching:mock_chat")).status_code == 403
    with pytest.raises(Exception, match="Only supervisors"):
        services.start_mock_chat(user=visitor_like, scenario_id=scenario.pk, department_id=1)


def _ended_mock_chat(supervisor, agent, scenario) -> MockChat:
    from chat import assignment

    AgentProfile.objects.filter(pk=agent.pk).update(presence=AgentProfile.Presence.ONLINE)
    mock, _ = services.start_mock_chat(user=supervisor, scenario_id=scenario.pk, agent_id=agent.pk)
    assignment.accept_offer(agent=agent, conversation_id=mock.conversation_id)
    chat_services.post_staff_message(
        user=agent.user,
        conversation_id=mock.conversation_id,
        body="I am sorry about the double charge; I will refund it now.",
        client_id=None,
    )
    chat_services.end_conversation(
        conversation_id=mock.conversation_id, ended_by=Conversation.EndedBy.AGENT
    )
    return mock


def test_a_mock_chat_is_reviewed_annotated_scored_and_shared_like_a_real_one(
    supervisor, agent, scenario
):
    from decimal import Decimal

    from coaching import selectors
    from coaching.models import Criterion, Scorecard

    mock = _ended_mock_chat(supervisor, agent, scenario)
    client = staff_client(supervisor)
    listing = client.get(reverse("coaching:mock_chat"))
    assert scenario.title in listing.text and "Review</button>" in listing.text

    opened = client.post(reverse("coaching:review_mock", args=[mock.pk]))
    review = Review.objects.get()
    assert opened.status_code == 302
    assert opened["Location"] == reverse("admin:coaching_review_change", args=[review.pk])
    assert review.by_hand and review.rule is None and review.agent == agent
    # Asking again opens the same review.
    client.post(reverse("coaching:review_mock", args=[mock.pk]))
    assert Review.objects.count() == 1
    assert "Open the review" in client.get(reverse("coaching:mock_chat")).text

    page = client.get(opened["Location"])
    assert "I am sorry about the double charge" in page.text
    answer = Message.objects.get(conversation_id=mock.conversation_id, role=Message.Role.AGENT)
    services.annotate(
        user=supervisor,
        review_id=review.pk,
        category="praise",
        comment="Named the next step at once.",
        message_id=answer.pk,
    )
    card = Scorecard.objects.create(name="Basics")
    empathy = Criterion.objects.create(scorecard=card, label="Empathy first", kind="yes_no")
    services.fill_scorecard(
        user=supervisor, review_id=review.pk, scorecard_id=card.pk, values={empathy.pk: 1}
    )
    services.share_review(user=supervisor, review_id=review.pk)
    inbox = staff_client(agent.user).get(reverse("coaching:review", args=[review.pk]))
    assert inbox.status_code == 200 and "Named the next step at once." in inbox.text

    # Training: its score counts in no metric.
    assert Review.objects.get().score == Decimal("100.00")
    assert not selectors.scored_reviews().exists()
    assert selectors.agent_scores_over_time(user=supervisor) == []


def test_a_mock_chat_is_reviewed_only_once_ended_and_only_by_its_supervisor(
    supervisor, agent, scenario, department_supervisor
):
    from chat import assignment

    AgentProfile.objects.filter(pk=agent.pk).update(presence=AgentProfile.Presence.ONLINE)
    mock, _ = services.start_mock_chat(user=supervisor, scenario_id=scenario.pk, agent_id=agent.pk)
    assignment.accept_offer(agent=agent, conversation_id=mock.conversation_id)
    client = staff_client(supervisor)
    early = client.post(reverse("coaching:review_mock", args=[mock.pk]), follow=True)
    assert "End the mock chat (an agent must have accepted it) before reviewing it." in early.text
    assert not Review.objects.exists()

    chat_services.end_conversation(
        conversation_id=mock.conversation_id, ended_by=Conversation.EndedBy.AGENT
    )
    # Another supervisor (of the same department) did not play it: not found, nothing created.
    other = staff_client(department_supervisor).post(
        reverse("coaching:review_mock", args=[mock.pk])
    )
    assert other.status_code == 404
    assert staff_client(agent.user).post(
        reverse("coaching:review_mock", args=[mock.pk])
    ).status_code == 403
    assert client.get(reverse("coaching:review_mock", args=[mock.pk])).status_code == 405
    assert not Review.objects.exists()
