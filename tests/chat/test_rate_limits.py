"""Per-visitor rate limits over the real ASGI app: a clear error frame, nothing lost or stored."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from chat.models import Conversation, Message
from tests.chat.helpers import receive_until, visitor_socket

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def visitor_bodies() -> list[str]:
    return list(Message.objects.filter(role="visitor").order_by("pk").values_list("body", flat=True))


async def test_too_many_messages_get_rate_limited_and_a_resend_is_still_answered(
    department, settings
):
    settings.CHAT_VISITOR_MESSAGES_PER_MINUTE = 3
    visitor, _ = await visitor_socket()
    await visitor.send_json_to(
        {"type": "start", "department": "support", "message": "one", "client_id": "c-1"}
    )
    await receive_until(visitor, lambda f: f["type"] == "conversation")
    for n in (2, 3):
        await visitor.send_json_to({"type": "message", "body": f"msg {n}", "client_id": f"c-{n}"})
        await receive_until(visitor, lambda f, n=n: f["type"] == "ack" and f["client_id"] == f"c-{n}")

    await visitor.send_json_to({"type": "message", "body": "msg 4", "client_id": "c-4"})
    error = await receive_until(visitor, lambda f: f["type"] == "error")
    assert error["code"] == "rate_limited" and error["ref"] == "c-4"
    assert "too fast" in error["message"]
    assert await visitor_bodies() == ["one", "msg 2", "msg 3"]

    # A resend of a message already stored is acknowledged, not refused.
    await visitor.send_json_to({"type": "message", "body": "msg 3", "client_id": "c-3"})
    ack = await receive_until(visitor, lambda f: f["type"] in ("ack", "error"))
    assert ack["type"] == "ack" and ack["client_id"] == "c-3"
    await visitor.disconnect()


async def test_too_many_new_conversations_get_rate_limited(department, settings):
    settings.CHAT_VISITOR_CONVERSATIONS_PER_HOUR = 1
    visitor, _ = await visitor_socket()
    await visitor.send_json_to({"type": "start", "department": "support"})
    await receive_until(visitor, lambda f: f["type"] == "conversation")
    await visitor.send_json_to({"type": "end"})
    await receive_until(visitor, lambda f: f["type"] == "conversation" and f["status"] != "queued")

    await visitor.send_json_to({"type": "start", "department": "support", "ref": "again"})
    error = await receive_until(visitor, lambda f: f["type"] == "error")
    assert error["code"] == "rate_limited" and "too many chats" in error["message"]
    count = await database_sync_to_async(Conversation.objects.count)()
    assert count == 1
    await visitor.disconnect()
