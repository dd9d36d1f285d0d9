"""The supervisor socket (/ws/supervisor/): live view, sit-in, whisper, barge-in.

Thin like the other consumers: every check and change is in chat/oversight.py. Sitting in joins
the chat's staff group (messages, visitor typing) and its supervision group (agent typing); no
frame goes to the visitor, so the visitor cannot tell. Frames: docs/protocol.md.

The live view is pushed: the socket joins the live group of each department it supervises
(events.live_group), and every queue, offer, accept, transfer, take-over and end sends that group
the chat's id only. The socket then reads the chat again through oversight.live_row, which checks
the supervisor's departments as they are now, and sends a `live_row` or `live_remove`. Events
come through the channel layer, so a change made by another server process arrives the same way.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from chat import events, frames, oversight
from chat.consumers import JsonFrameConsumer, _int_field
from chat.pipeline import display_names


class SupervisorConsumer(JsonFrameConsumer):
    handlers = {
        "live": "on_live",
        "sit_in": "on_sit_in",
        "leave": "on_leave",
        "whisper": "on_whisper",
        "barge_in": "on_barge_in",
        "take_over": "on_take_over",
        "message": "on_message",
        "ping": "on_ping",
    }

    async def connect(self) -> None:
        user = self.scope.get("user")
        allowed = (
            await database_sync_to_async(oversight.is_supervisor)(user=user) if user else False
        )
        if not allowed:
            await self.close()  # refused at the handshake: HTTP 403
            return
        self.user = user
        self.following: set[int] = set()
        self.live_departments: set[int] = set()
        self.live_ids: set[int] = set()  # the chats this page shows: only these get live_remove
        await self.accept()
        await self.on_live({})

    async def disconnect(self, code: int) -> None:
        for conversation_id in list(getattr(self, "following", ())):
            await self._leave(conversation_id)
        for department_id in list(getattr(self, "live_departments", ())):
            await self.channel_layer.group_discard(events.live_group(department_id), self.channel_name)

    def _ip(self) -> str | None:
        client = self.scope.get("client")
        return client[0] if client else None

    async def on_live(self, data: dict[str, Any]) -> None:
        """The whole list; also re-reads which departments' live groups this socket belongs to.

        Join first, then read: a change in between is read twice at worst, never missed.
        """
        allowed = set(await database_sync_to_async(oversight.live_department_ids)(user=self.user))
        for department_id in allowed - self.live_departments:
            await self.channel_layer.group_add(events.live_group(department_id), self.channel_name)
        for department_id in self.live_departments - allowed:
            await self.channel_layer.group_discard(events.live_group(department_id), self.channel_name)
        self.live_departments = allowed
        rows = await database_sync_to_async(oversight.live_conversations)(user=self.user)
        self.live_ids = {r["conversation_id"] for r in rows}
        await self.send_frame({"type": "live", "conversations": rows})

    def _live_change(self, conversation_id: int, department_id: int) -> tuple[dict[str, Any] | None, bool]:
        row = oversight.live_row(user=self.user, conversation_id=conversation_id)
        still_supervised = department_id in oversight.live_department_ids(user=self.user)
        return row, still_supervised

    async def chat_live(self, event: dict[str, Any]) -> None:
        conversation_id, department_id = event["conversation_id"], event["department_id"]
        row, still_supervised = await database_sync_to_async(self._live_change)(
            conversation_id, department_id
        )
        if not still_supervised:
            # The supervisor lost this department since the socket joined its group.
            self.live_departments.discard(department_id)
            await self.channel_layer.group_discard(events.live_group(department_id), self.channel_name)
        if conversation_id in self.following:
            await self._still_allowed(conversation_id)
        if row is not None:
            self.live_ids.add(conversation_id)
            await self.send_frame({"type": "live_row", "conversation": row})
        elif conversation_id in self.live_ids:
            self.live_ids.discard(conversation_id)
            await self.send_frame({"type": "live_remove", "conversation_id": conversation_id})

    async def on_sit_in(self, data: dict[str, Any]) -> None:
        conversation_id = _int_field(data, "conversation_id")
        after_seq = _int_field(data, "last_seq", default=0)
        await database_sync_to_async(oversight.sit_in)(
            user=self.user, conversation_id=conversation_id, source_ip=self._ip()
        )
        self.following.add(conversation_id)
        await self.channel_layer.group_add(events.staff_group(conversation_id), self.channel_name)
        await self.channel_layer.group_add(
            events.supervision_group(conversation_id), self.channel_name
        )
        # Join first, then read: a message in between arrives twice at worst (clients dedupe by seq).
        await self.send_frame(
            await database_sync_to_async(self._history)(conversation_id, after_seq)
        )

    def _history(self, conversation_id: int, after_seq: int) -> dict[str, Any]:
        conversation = oversight.get_conversation_for_supervisor(
            user=self.user, conversation_id=conversation_id
        )
        messages = oversight.supervisor_messages_after(
            conversation=conversation, after_seq=after_seq
        )
        names = display_names([m.sender_id for m in messages if m.sender_id])
        frame = frames.staff_conversation_frame(conversation)
        frame["is_training"] = conversation.is_training
        return {
            "type": "history",
            "conversation_id": conversation.pk,
            "conversation": frame,
            "messages": [
                frames.staff_message_frame(m, author=names.get(m.sender_id)) for m in messages
            ],
            "last_seq": conversation.last_seq,
        }

    async def _leave(self, conversation_id: int) -> None:
        self.following.discard(conversation_id)
        await self.channel_layer.group_discard(
            events.staff_group(conversation_id), self.channel_name
        )
        await self.channel_layer.group_discard(
            events.supervision_group(conversation_id), self.channel_name
        )

    async def on_leave(self, data: dict[str, Any]) -> None:
        await self._leave(_int_field(data, "conversation_id"))

    async def on_whisper(self, data: dict[str, Any]) -> None:
        message = await database_sync_to_async(oversight.whisper)(
            user=self.user,
            conversation_id=data.get("conversation_id"),
            body=data.get("body"),
            client_id=data.get("client_id"),
            source_ip=self._ip(),
        )
        await self.send_frame(
            {
                "type": "ack",
                "client_id": message.client_id,
                "seq": message.seq,
                "conversation_id": message.conversation_id,
            }
        )

    async def on_barge_in(self, data: dict[str, Any]) -> None:
        await database_sync_to_async(oversight.barge_in)(
            user=self.user, conversation_id=data.get("conversation_id"), source_ip=self._ip()
        )

    async def on_take_over(self, data: dict[str, Any]) -> None:
        await database_sync_to_async(oversight.take_over)(
            user=self.user, conversation_id=data.get("conversation_id"), source_ip=self._ip()
        )

    async def on_message(self, data: dict[str, Any]) -> None:
        message = await database_sync_to_async(oversight.post_supervisor_message)(
            user=self.user,
            conversation_id=data.get("conversation_id"),
            body=data.get("body"),
            client_id=data.get("client_id"),
        )
        await self.send_frame(
            {
                "type": "ack",
                "client_id": message.client_id,
                "seq": message.seq,
                "conversation_id": message.conversation_id,
            }
        )

    async def on_ping(self, data: dict[str, Any]) -> None:
        await self.send_frame({"type": "pong"})

    async def _still_allowed(self, conversation_id: int) -> bool:
        """Checked for every frame of a followed chat: a transfer out of the supervisor's
        departments, or a department or role taken away, ends the sit-in there and then."""
        if await database_sync_to_async(oversight.may_follow)(
            user=self.user, conversation_id=conversation_id
        ):
            return True
        await self._leave(conversation_id)
        await self.send_frame({"type": "left", "conversation_id": conversation_id})
        return False

    async def chat_frame(self, event: dict[str, Any]) -> None:
        frame = event["frame"]
        conversation_id = frame.get("conversation_id")
        if conversation_id not in self.following or not await self._still_allowed(conversation_id):
            return
        await self.send_frame(frame)

    # Events an agent socket acts on; a supervisor following the chat only needs the frame.
    async def chat_subscribe(self, event: dict[str, Any]) -> None:
        await self.chat_frame(event)

    async def chat_unsubscribe(self, event: dict[str, Any]) -> None:
        await self.chat_frame(event)
