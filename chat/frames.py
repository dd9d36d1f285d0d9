"""Serialisation of domain objects into protocol frames (docs/protocol.md).

Frames for visitors are built by separate functions from frames for staff so that a staff-only
field can never slip into a visitor frame by a shared code path.
"""

from __future__ import annotations

from typing import Any

from chat.models import AgentProfile, Conversation, Message


def _ts(value: Any) -> str | None:
    return value.isoformat() if value else None


def agent_card(agent: AgentProfile | None) -> dict[str, Any] | None:
    if agent is None:
        return None
    return {
        "name": agent.display_name,
        "initials": agent.initials,
        "avatar_url": agent.avatar.url if agent.avatar else None,
    }


def author_name(message: Message, names: dict[int, str]) -> str | None:
    if message.role == Message.Role.VISITOR:
        return None
    if message.sender_id is None:
        return None
    return names.get(message.sender_id)


def visitor_message_frame(message: Message, *, author: str | None) -> dict[str, Any]:
    if message.visibility != Message.Visibility.PUBLIC:
        # Defence in depth: callers filter first, this makes a mistake fail loudly instead of leak.
        raise ValueError("only public messages may be framed for a visitor")
    frame = {
        "type": "message",
        "conversation_id": message.conversation_id,
        "seq": message.public_seq,
        "role": message.role,
        "author": author,
        "body": message.body,
        "client_id": message.client_id if message.role == Message.Role.VISITOR else None,
        "created_at": _ts(message.created_at),
    }
    if message.meta and "attachment" in message.meta:
        from chat.attachments import visitor_frame_part

        part = visitor_frame_part(message.meta)
        if part is not None:
            frame["attachment"] = part  # the file's public description and the visitor's own link
    return frame


def staff_message_frame(message: Message, *, author: str | None) -> dict[str, Any]:
    frame = {
        "type": "message",
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "role": message.role,
        "author": author,
        "sender_id": message.sender_id,
        "visibility": message.visibility,
        "whisper_to": message.whisper_to_id,
        "body": message.body,
        "client_id": message.client_id,
        "meta": message.meta,
        "created_at": _ts(message.created_at),
    }
    if message.meta and "attachment" in message.meta:
        from chat.attachments import staff_frame_part

        part = staff_frame_part(message.meta)
        if part is not None:
            frame["attachment"] = part
    return frame


def visitor_conversation_frame(conversation: Conversation, *, queue_position: int | None) -> dict[str, Any]:
    return {
        "type": "conversation",
        "conversation_id": conversation.pk,
        "status": conversation.status,
        "department": conversation.department.name,
        "agent": agent_card(conversation.agent) if conversation.status == Conversation.Status.ACTIVE else None,
        "queue_position": queue_position,
        "last_seq": conversation.last_public_seq,
        "ended_by": conversation.ended_by or None,
    }


def staff_conversation_frame(conversation: Conversation) -> dict[str, Any]:
    visitor = conversation.visitor
    return {
        "type": "conversation",
        "conversation_id": conversation.pk,
        "status": conversation.status,
        "department": {"id": conversation.department_id, "name": conversation.department.name},
        "agent_id": conversation.agent.user_id if conversation.agent else None,
        "subject": conversation.subject,
        "visitor": {
            "name": visitor.name,
            "email": visitor.email,
            "page_url": visitor.page_url,
            "referrer": visitor.referrer,
        },
        "created_at": _ts(conversation.created_at),
        "queued_at": _ts(conversation.queued_at),
        "assigned_at": _ts(conversation.assigned_at),
        "ended_at": _ts(conversation.ended_at),
        "ended_by": conversation.ended_by or None,
        "last_seq": conversation.last_seq,
        "is_training": conversation.is_training,
    }


def queue_entry(conversation: Conversation, position: int) -> dict[str, Any]:
    return {
        "conversation_id": conversation.pk,
        "position": position,
        "department": {"id": conversation.department_id, "name": conversation.department.name},
        "visitor_name": conversation.visitor.name,
        "subject": conversation.subject,
        "waiting_since": _ts(conversation.queued_at),
    }


def agent_state(
    profile: AgentProfile, *, user_id: int, departments: list[Any], queue: list[dict[str, Any]],
    held: list[Conversation], agents: list[dict[str, Any]], all_departments: list[dict[str, Any]],
    username_key: str,
) -> dict[str, Any]:
    """An agent socket's `state` frame. `agents` are rows (values()), not model instances: each
    agent's state lists every other agent, and building two model objects per agent was most of
    what a state cost with 100 agents per process (py-spy during tests/realmode/test_chaos.py)."""
    return {
        "type": "state",
        "me": {
            "user_id": user_id,
            "name": profile.display_name,
            "presence": profile.presence,
            "max_chats": profile.max_chats,
            "departments": [{"id": d.pk, "name": d.name, "routing": d.routing} for d in departments],
        },
        "conversations": [staff_conversation_frame(c) for c in held],
        "queue": queue,
        "agents": [
            {"user_id": a["user_id"], "name": a["display_name"], "presence": a["presence"], "username": a[username_key]}
            for a in agents
        ],
        "all_departments": all_departments,
    }
