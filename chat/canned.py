"""Canned responses: which ones an agent may use, their placeholders, and recording a use.

The client inserts a response and may edit it before sending; what is recorded on the message
(Message.meta["canned"]) is computed here from the stored response, never taken from the client.
"""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Q, QuerySet

from chat.errors import InvalidInput
from chat.models import AgentProfile, CannedResponse, Conversation
from chat.pipeline import clean_body

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def usable_by(*, agent: AgentProfile) -> QuerySet[CannedResponse]:
    """The agent's own set, its departments' sets and the shared (no department, no owner) set."""
    return CannedResponse.objects.filter(
        Q(owner=agent)
        | Q(owner__isnull=True, department__isnull=True)
        | Q(owner__isnull=True, department__in=agent.departments.all())
    ).select_related("department")


def placeholders(*, agent: AgentProfile, conversation: Conversation | None) -> dict[str, str]:
    visitor = conversation.visitor if conversation is not None else None
    visitor_name = (visitor.name if visitor else "") or "there"
    return {
        "visitor_name": visitor_name,
        "visitor_first_name": visitor_name.split()[0],
        "visitor_email": (visitor.email if visitor else "") or "",
        "agent_name": agent.display_name,
        "agent_first_name": (agent.display_name.split() or [""])[0],
        "department": conversation.department.name if conversation is not None else "",
    }


def render(body: str, values: dict[str, str]) -> str:
    # Unknown {words} stay as typed: a response may legitimately contain braces.
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), body)


def listing(*, agent: AgentProfile, conversation: Conversation | None) -> list[dict[str, Any]]:
    values = placeholders(agent=agent, conversation=conversation)
    return [
        {
            "id": r.pk,
            "shortcut": r.shortcut,
            "title": r.title,
            "scope": "personal"
            if r.owner_id
            else (r.department.name if r.department else "shared"),
            "body": render(r.body, values),
        }
        for r in usable_by(agent=agent)
    ]


def use_meta(
    *, agent: AgentProfile | None, conversation: Conversation, canned_id: Any, body: Any
) -> dict[str, Any]:
    """meta["canned"] for a message sent with `canned_id`: checked against what the agent may use.

    `edited` compares the cleaned text sent with the cleaned rendering of the stored response.
    """
    if not isinstance(canned_id, int) or isinstance(canned_id, bool):
        raise InvalidInput("canned_id must be the id of a canned response.", code="invalid_field")
    response = usable_by(agent=agent).filter(pk=canned_id).first() if agent is not None else None
    if response is None:
        raise InvalidInput("No such canned response for you.", code="unknown_canned")
    rendered = render(response.body, placeholders(agent=agent, conversation=conversation))
    edited = not isinstance(body, str) or clean_body(body) != clean_body(rendered)
    return {"canned": {"id": response.pk, "shortcut": response.shortcut, "edited": edited}}
