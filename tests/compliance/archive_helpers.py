"""Shared by the archive tests: ended chats with awkward text, and archive settings."""

from __future__ import annotations

from typing import Any

from chat import services
from chat.models import Conversation, Message
from chat.pipeline import Inbound, run
from compliance.models import ArchiveSettings

HOSTILE_NAME = '<img src=x onerror="alert(1)">Eve'
HOSTILE_BODY = "Hi <script>alert('x')</script> my code is secret-4242"


def ended_chat(
    capture: Any,
    *,
    department: Any,
    agent: Any = None,
    body: str = HOSTILE_BODY,
    name: str = HOSTILE_NAME,
) -> Conversation:
    """A conversation with a visitor message (and an agent note), ended with its hooks run."""
    visitor, _ = services.create_visitor(page_url="https://shop.example/checkout?<b>=1")
    conversation = services.start_conversation(
        visitor=visitor, department_slug=department.slug, name=name,
        email="eve@example.com", message=body,
    )
    if agent is not None:
        run(Inbound(
            conversation_id=conversation.pk, role=Message.Role.AGENT, sender_id=agent.user_id,
            body="Agent reply & <b>bold</b>", visibility=Message.Visibility.INTERNAL,
        ))
    with capture(execute=True):
        services.end_conversation(conversation_id=conversation.pk, ended_by="visitor")
    return conversation


def configure(**fields: Any) -> ArchiveSettings:
    config = ArchiveSettings(pk=1, **fields)
    config.full_clean()
    config.save()
    return config
