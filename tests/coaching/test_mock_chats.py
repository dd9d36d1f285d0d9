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
