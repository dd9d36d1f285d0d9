"""Live masking in the one chat message pipeline, registered by compliance's AppConfig."""

from __future__ import annotations

import pytest
from django.utils import timezone

from chat import pipeline
from chat.models import Conversation, Message, Visitor
from compliance import services
from compliance.models import MaskingRule

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(department) -> Conversation:
    visitor = Visitor.objects.create(token_hash="x" * 64)
    return Conversation.objects.create(
        created_at=timezone.now(), department=department, visitor=visitor
    )


def test_the_masker_is_registered_with_the_pipeline() -> None:
    assert (services.mask_chat_text, services.mask_chat_text_cached) in pipeline._text_filters


def test_a_visitors_card_number_is_never_stored(conversation) -> None:
    message, created = pipeline.run(
        pipeline.Inbound(
            conversation_id=conversation.pk, role="visitor", body="my card 4111 1111 1111 1111"
        )
    )
    assert created
    stored = Message.objects.get(pk=message.pk).body
    assert stored == "my card XXXX XXXX XXXX XXXX"
    assert "4111" not in stored


def test_an_agents_message_is_masked_too(conversation, agent) -> None:
    message, _ = pipeline.run(
        pipeline.Inbound(
            conversation_id=conversation.pk,
            role="agent",
            sender_id=agent.user_id,
            body="Is it 5555-5555-5555-4444?",
        )
    )
    assert Message.objects.get(pk=message.pk).body == "Is it XXXX-XXXX-XXXX-XXXX?"


def test_department_rules_apply_in_the_pipeline(conversation, other_department) -> None:
    rule = MaskingRule.objects.create(name="policy", pattern=r"\bPOL\d{6}\b")
    rule.departments.set([conversation.department])
    services.reload_masking_rules()
    message, _ = pipeline.run(
        pipeline.Inbound(conversation_id=conversation.pk, role="visitor", body="POL123456")
    )
    assert Message.objects.get(pk=message.pk).body == "XXXXXXXXX"

    elsewhere = Conversation.objects.create(
        created_at=timezone.now(), department=other_department, visitor=conversation.visitor
    )
    message, _ = pipeline.run(
        pipeline.Inbound(conversation_id=elsewhere.pk, role="visitor", body="POL123456")
    )
    assert Message.objects.get(pk=message.pk).body == "POL123456"
