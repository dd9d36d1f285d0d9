"""WebSocket consumers: authenticate, validate a frame, call one service, pass events on.

Every ORM call runs through `database_sync_to_async`; nothing here touches the database on the
event loop. The frame format is documented in docs/protocol.md.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from channels.consumer import get_handler_name
from channels.db import aclose_old_connections, database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user_model

from chat import (
    assignment,
    blocks,
    canned,
    collab,
    dispositions,
    events,
    frames,
    heartbeats,
    layer_watch,
    message_fast_path,
    resync,
    selectors,
    services,
    sweeper,
    visitor_panel,
)
from chat.dbpool import message_sync_to_async
from chat.delivered import Delivered
from chat.errors import ChatError, InvalidInput, outage_of
from chat.models import Message
from chat.pipeline import display_names

log = logging.getLogger(__name__)

CLOSE_TOO_BIG = 1009
Handler = Callable[[dict[str, Any]], Awaitable[None]]


def _int_field(data: dict[str, Any], name: str, *, default: int | None = None) -> int:
    value = data.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(f"{name} must be a non-negative integer.", code="invalid_field")
    return value


class JsonFrameConsumer(AsyncWebsocketConsumer):
    """Turns raw frames into dicts and every refusal into a documented error frame."""

    handlers: dict[str, str] = {}
    # Frames handled without Channels' hop to the shared database thread first (see dispatch):
    # the chat's own frames, which must not wait behind other sockets' database work and need no
    # ordering against it (a socket handles its frames one at a time). Their database work runs
    # on the message path (chat/message_fast_path.py, chat/dbpool.py), which closes stale
    # connections itself. A hop per chat message was 4-7 % of the server's CPU under load.
    frames_without_hop: frozenset[str] = frozenset({"message", "typing", "ping"})

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol, headers)
        layer_watch.register(self)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch first runs close_old_connections on the shared database thread: a
        # round trip to that thread before every handler, two per chat message for the group
        # events alone (with the frame's, 11 % of the server's CPU under load; docs/benchmarks.md).
        # Group event handlers touch the database only through database_sync_to_async, which
        # closes stale connections itself, so they skip it. Client frames keep it, decided in
        # receive() once the frame's type is known: the hop also queues a frame behind the
        # database work already on that thread (a visitor's start still being set up when the
        # agent's accept arrives), so the visitor has joined the chat's group before the join
        # line goes out and gets it live, not only in its history
        # (tests/chat/test_conversation_frames.py found this when every hop was skipped).
        # The handshake skips it too: a socket's first message has nothing of its own to queue
        # behind, and its reads run on the message threads (AgentConsumer._start), so a process
        # busy on that thread still lets sockets in (tests/chat/test_handshake_threads.py).
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
            return
        if message["type"] == "websocket.connect":
            await self.websocket_connect(message)
            return
        if message["type"].startswith("websocket."):
            await super().dispatch(message)
            return
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        layer_watch.unregister(self)
        try:
            await super().websocket_disconnect(message)
        except Exception as exc:
            # Clean-up needs the layer and the database; in an outage it cannot finish, and the
            # socket is gone anyway (group memberships go with the process' subscriptions).
            if outage_of(exc) is None:
                raise
            log.warning("disconnect clean-up skipped: %s unavailable (%s)", outage_of(exc), exc)
            raise StopConsumer() from None

    async def close_for_outage(self, exc: BaseException, what: str) -> None:
        """A dependency is down while setting the socket up: close with 4503 so the client
        reconnects later with backoff, instead of a socket that can never be used."""
        log.warning("%s failed: %s unavailable (%s); closing with %d", what, outage_of(exc), exc,
                    layer_watch.CLOSE_RESYNC)
        await self.close(code=layer_watch.CLOSE_RESYNC)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=orjson.dumps(frame).decode())

    async def layer_resync(self, event: dict[str, Any]) -> None:
        """The channel layer was down and is back (chat/layer_watch.py): live frames sent
        meanwhile are lost. A socket that cannot catch up in place is closed with 4503, and its
        client reconnects and resumes."""
        await self.close(code=layer_watch.CLOSE_RESYNC)

    async def send_error(self, code: str, message: str, *, ref: Any = None) -> None:
        frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if isinstance(ref, str | int) and not isinstance(ref, bool):
            frame["ref"] = ref
        await self.send_frame(frame)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if bytes_data is not None:
            if len(bytes_data) > settings.CHAT_MAX_FRAME_BYTES:
                await self.close(code=CLOSE_TOO_BIG)
                return
            await self.send_error("binary_not_supported", "Send JSON text frames, not binary ones.")
            return
        text = text_data or ""
        if len(text.encode()) > settings.CHAT_MAX_FRAME_BYTES:
            await self.close(code=CLOSE_TOO_BIG)
            return
        if not text.strip():
            await self.send_error("empty_frame", "The frame was empty.")
            return
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            await self.send_error("malformed_json", "The frame is not valid JSON.")
            return
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            await self.send_error("missing_type", 'A frame is a JSON object with a string "type".')
            return
        ref = data.get("client_id", data.get("ref"))
        method = self.handlers.get(data["type"])
        if method is None:
            await self.send_error("unknown_type", f"Unknown frame type {data['type'][:40]!r}.", ref=ref)
            return
        try:
            if data["type"] not in self.frames_without_hop:
                await aclose_old_connections()
            await getattr(self, method)(data)
        except ChatError as exc:
            await self.send_error(exc.code, exc.message, ref=ref)
        except Exception as exc:
            if (dependency := outage_of(exc)) is not None:
                # One line, not a traceback per frame: in an outage every frame fails alike.
                log.warning("frame %s failed: %s unavailable (%s)", data["type"][:40], dependency, exc)
            else:
                log.exception("frame %s failed", data["type"][:40])
            await self.send_error("internal", "Something went wrong on our side; nothing was lost. Try again.", ref=ref)


class VisitorConsumer(JsonFrameConsumer):
    # `hello` is the visitor's handshake, with its reads on the message threads (see _hello).
    frames_without_hop = JsonFrameConsumer.frames_without_hop | {"hello"}
    handlers = {
        "hello": "on_hello",
        "start": "on_start",
        "message": "on_message",
        "typing": "on_typing",
        "sync": "on_sync",
        "end": "on_end",
        "ping": "on_ping",
    }

    visitor: Any = None
    conversation_id: int | None = None

    async def connect(self) -> None:
        self.visitor = None
        self.conversation_id = None
        self.delivered = Delivered()
        await self.accept()
        sweeper.ensure_running()

    async def disconnect(self, code: int) -> None:
        if self.visitor is not None:
            await self.channel_layer.group_discard(events.visitor_private_group(self.visitor.pk), self.channel_name)
            await database_sync_to_async(services.touch_visitor)(visitor_id=self.visitor.pk)
        if self.conversation_id is not None:
            await self.channel_layer.group_discard(events.visitor_group(self.conversation_id), self.channel_name)

    def _client_ip(self) -> str | None:
        client = self.scope.get("client")
        return client[0] if client else None

    def _header(self, name: bytes) -> str:
        for key, value in self.scope.get("headers", []):
            if key == name:
                return value.decode("latin1")[:2000]
        return ""

    def _require_visitor(self) -> Any:
        if self.visitor is None:
            raise ChatError("Send hello first.", code="hello_required")
        return self.visitor

    async def on_hello(self, data: dict[str, Any]) -> None:
        if self.visitor is not None:
            raise ChatError("hello was already sent on this connection.", code="already_hello")
        try:
            await self._hello(data)
        except Exception as exc:
            self.visitor = None  # not identified: a client may say hello again
            if isinstance(exc, ChatError) or outage_of(exc) is None:
                raise
            await self.close_for_outage(exc, "hello")

    async def _hello(self, data: dict[str, Any]) -> None:
        last_seq = _int_field(data, "last_seq", default=0)
        # The chat `last_seq` belongs to; without it the server can only guess (see _welcome_state).
        followed = data.get("conversation_id")
        if followed is not None:
            followed = _int_field(data, "conversation_id")
        token = data.get("token")
        issued = None
        # On the message threads, as an agent's handshake (AgentConsumer._start): after a server
        # went down, every visitor of it says hello to the other one at once.
        if token is None:
            self.visitor, issued = await message_sync_to_async(services.create_visitor)(
                page_url=data.get("page_url"),
                referrer=data.get("referrer"),
                user_agent=self._header(b"user-agent"),
                ip_address=self._client_ip(),
            )
        else:
            self.visitor = await message_sync_to_async(selectors.get_visitor_by_token)(token=token)
            if self.visitor is None:
                raise ChatError("This visitor token is not valid; send hello without a token.", code="invalid_token")
            await message_sync_to_async(services.touch_visitor)(
                visitor_id=self.visitor.pk, page_url=data.get("page_url"), ip_address=self._client_ip()
            )
        await self.channel_layer.group_add(events.visitor_private_group(self.visitor.pk), self.channel_name)
        state, after_seq = await message_sync_to_async(self._welcome_state)(last_seq, followed)
        await self.send_frame({"type": "welcome", "token": issued, **state})
        if state["conversation"] is not None:
            await self._follow(state["conversation"]["conversation_id"], after_seq=after_seq, read=message_sync_to_async)

    def _welcome_state(self, last_seq: int = 0, followed: int | None = None) -> tuple[dict[str, Any], int]:
        """The welcome frame's fields, and the sequence number the history starts after.

        `followed` is the chat the client's `last_seq` counts in. The open chat wins; when it is
        another chat than `followed` (another tab ended that one and started this), the client
        has none of its messages and gets them all. Without an open chat, `followed` (if it is
        this visitor's) comes back even when it ended long ago, so a reloaded page can show its
        end and its survey.
        """
        from chat.models import Department

        conversation, after_seq = self._followed_conversation(last_seq, followed)
        frame = None
        if conversation is not None:
            frame = frames.visitor_conversation_frame(
                conversation, queue_position=assignment.queue_position_of(conversation)
            )
        state = {
            "visitor": {"name": self.visitor.name, "email": self.visitor.email},
            "conversation": frame,
            "departments": [{"slug": d.slug, "name": d.name} for d in Department.objects.all()],
            "blocked": blocks.is_blocked(visitor=self.visitor, ip_address=self._client_ip()),
        }
        return state, after_seq

    def _followed_conversation(self, last_seq: int, followed: int | None) -> tuple[Any, int]:
        after_seq = last_seq
        conversation = selectors.open_conversation_for_visitor(visitor=self.visitor)
        if conversation is not None:
            if followed is not None and followed != conversation.pk:
                after_seq = 0
        elif followed is not None:
            conversation = selectors.find_conversation_for_visitor(visitor=self.visitor, conversation_id=followed)
            if conversation is None:
                after_seq = 0
        elif last_seq > 0:
            # An older client that does not say which chat it holds: a chat that ended while it
            # was away is the latest one, and it still gets the rest (the last replies, the end
            # line) instead of a blank page.
            conversation = selectors.latest_conversation_for_visitor(visitor=self.visitor)
        return conversation, after_seq

    async def _follow(self, conversation_id: int, *, after_seq: int = 0, read: Any = database_sync_to_async) -> None:
        if self.conversation_id not in (None, conversation_id):
            await self.channel_layer.group_discard(events.visitor_group(self.conversation_id), self.channel_name)
        self.conversation_id = conversation_id
        await self.channel_layer.group_add(events.visitor_group(conversation_id), self.channel_name)
        # Join first, then read: anything sent in between arrives twice at worst, and the
        # client drops sequence numbers it already has.
        await self._send_history(after_seq, read=read)

    async def _send_history(self, after_seq: int, *, read: Any = database_sync_to_async) -> None:
        # One frame per page until a short page: a long absence is delivered in full.
        while True:
            history = await read(self._history)(after_seq)
            await self.send_frame(history)
            self.delivered.history_frame(history, after_seq=after_seq)
            if len(history["messages"]) < selectors.HISTORY_PAGE:
                return
            after_seq = history["messages"][-1]["seq"]

    def _history(self, after_seq: int) -> dict[str, Any]:
        conversation = selectors.get_conversation_for_visitor(visitor=self.visitor, conversation_id=self.conversation_id)
        messages = selectors.visitor_messages_after(conversation=conversation, after_seq=after_seq)
        names = display_names([m.sender_id for m in messages if m.sender_id])
        return {
            "type": "history",
            "conversation_id": conversation.pk,
            "messages": [frames.visitor_message_frame(m, author=names.get(m.sender_id)) for m in messages],
            "last_seq": conversation.last_public_seq,
        }

    async def on_start(self, data: dict[str, Any]) -> None:
        visitor = self._require_visitor()
        await database_sync_to_async(blocks.check_not_blocked)(visitor=visitor, ip_address=self._client_ip())
        conversation = await database_sync_to_async(services.start_conversation)(
            visitor=visitor,
            department_slug=data.get("department"),
            name=data.get("name"),
            email=data.get("email"),
            message=data.get("message"),
            client_id=data.get("client_id"),
        )
        message_fast_path.remember_department(("v", visitor.pk), conversation.department_id)
        # Join first (the agent may accept at once, and the "joined" line must reach this socket
        # live), then read the state, so it counts at least as far as the history just sent.
        await self._follow(conversation.pk)
        state = await database_sync_to_async(self._conversation_state)(conversation.pk)
        await self.send_frame(state)

    def _conversation_state(self, conversation_id: int) -> dict[str, Any]:
        conversation = selectors.get_conversation_for_visitor(visitor=self.visitor, conversation_id=conversation_id)
        return frames.visitor_conversation_frame(conversation, queue_position=assignment.queue_position_of(conversation))

    async def on_message(self, data: dict[str, Any]) -> None:
        visitor = self._require_visitor()
        message = await message_fast_path.send_visitor_message(
            visitor=visitor, body=data.get("body"), client_id=data.get("client_id")
        )
        await self.send_frame(
            {"type": "ack", "client_id": message.client_id, "seq": message.public_seq,
             "conversation_id": message.conversation_id}
        )

    async def on_typing(self, data: dict[str, Any]) -> None:
        self._require_visitor()
        if self.conversation_id is None:
            return
        await self.channel_layer.group_send(
            events.staff_group(self.conversation_id),
            {
                "type": "chat.frame",
                "frame": {"type": "typing", "conversation_id": self.conversation_id, "role": "visitor",
                          "active": bool(data.get("active", True))},
                "visibility": "public",
            },
        )

    async def on_sync(self, data: dict[str, Any]) -> None:
        self._require_visitor()
        last_seq = _int_field(data, "last_seq", default=0)
        if self.conversation_id is None:
            raise ChatError("You have no open chat.", code="not_found")
        await self._send_history(last_seq)

    async def on_end(self, data: dict[str, Any]) -> None:
        visitor = self._require_visitor()
        await database_sync_to_async(services.end_by_visitor)(visitor=visitor)

    async def on_ping(self, data: dict[str, Any]) -> None:
        if self.visitor is not None:
            heartbeats.visitor_seen(self.visitor.pk)  # written within a second, with others
        await self.send_frame({"type": "pong"})

    async def chat_frame(self, event: dict[str, Any]) -> None:
        frame = event["frame"]
        # Only public events are ever sent to visitor groups; checking again here means a wrong
        # group name somewhere else still cannot leak an internal note or a whisper.
        if event.get("visibility", "public") != "public":
            return
        if frame.get("type") == "started":
            await self._follow(frame["conversation_id"])
            state = await database_sync_to_async(self._conversation_state)(frame["conversation_id"])
            await self.send_frame(state)
            return
        if frame.get("conversation_id") != self.conversation_id:
            return
        if frame.get("type") == "message" and "visibility" in frame:
            return  # a staff frame: never forwarded to a visitor
        await self.send_frame(frame)
        if frame.get("type") == "message":
            self.delivered.live(self.conversation_id, frame["seq"])

    async def layer_resync(self, event: dict[str, Any]) -> None:
        """Catch up in place after a channel-layer outage: join the groups again (the list-based
        layer kept them in the Redis that restarted), then send the followed chat's messages after
        the last seq this socket got in full, and its state as it is now (it may have ended, or
        another tab may have started a new one). Closing instead would make every socket of the
        process reconnect at once: handshakes, subscriptions and database reads for all of them."""
        if self.visitor is None:
            return  # nothing followed yet: its hello will read everything
        await self.channel_layer.group_add(events.visitor_private_group(self.visitor.pk), self.channel_name)
        prepared = layer_watch.take_prepared(self)
        if prepared is not None and prepared.follows == self.conversation_id:
            # Read for all the process' sockets at once (chat/resync.py) while this one already
            # followed this chat: what arrives live from now on is after what was read.
            history, state = prepared.frames
            await self.send_frame(history)
            self.delivered.history_frame(history, after_seq=prepared.after[history["conversation_id"]])
            await self.send_frame(state)
            return
        followed = self.conversation_id
        after = self.delivered.upto(followed) if followed is not None else 0
        frame, after_seq = await layer_watch.catch_up_sync_to_async(self._resync_state)(after, followed)
        if frame is None:
            return
        await self._follow(frame["conversation_id"], after_seq=after_seq, read=layer_watch.catch_up_sync_to_async)
        await self.send_frame(frame)

    def catch_up_spec(self) -> resync.VisitorSocket | None:
        """What this socket follows, for the catch-up of all sockets at once (chat/resync.py)."""
        if self.visitor is None or self.conversation_id is None:
            return None
        return resync.VisitorSocket(key=self.channel_name, visitor_id=self.visitor.pk,
                                    conversation_id=self.conversation_id,
                                    after_seq=self.delivered.upto(self.conversation_id))

    def _resync_state(self, last_seq: int, followed: int | None) -> tuple[dict[str, Any] | None, int]:
        conversation, after_seq = self._followed_conversation(last_seq, followed)
        if conversation is None:
            return None, 0
        frame = frames.visitor_conversation_frame(conversation, queue_position=assignment.queue_position_of(conversation))
        return frame, after_seq


class AgentConsumer(JsonFrameConsumer):
    handlers = {
        "presence": "on_presence",
        "accept": "on_accept",
        "decline": "on_decline",
        "take": "on_take",
        "message": "on_message",
        "typing": "on_typing",
        "sync": "on_sync",
        "end": "on_end",
        "transfer": "on_transfer",
        "ping": "on_ping",
        # Agent workspace (docs/protocol.md, "Workspace frames"):
        "canned": "on_canned",
        "open": "on_open",
        "visitor": "on_visitor",
        "dm": "on_dm",
        "dm_history": "on_dm_history",
        "close": "on_close",
        "block": "on_block",
    }

    async def connect(self) -> None:
        user = self.scope.get("user")
        # The handshake's reads run on the message threads (see _start).
        self.profile = await message_sync_to_async(selectors.get_agent_profile)(user=user) if user else None
        if self.profile is None:
            await self.close()  # refused at the handshake: HTTP 403
            return
        self.user = user
        self.conversations: set[int] = set()
        self.helping: set[int] = set()  # chats this agent was @tagged in: internal notes only
        self.delivered = Delivered()  # of the held chats, for the catch-up after an outage
        self.department_ids: list[int] = []
        await self.accept()
        sweeper.ensure_running()
        try:
            await self._start()
        except Exception as exc:
            if outage_of(exc) is None:
                raise
            await self.close_for_outage(exc, "agent socket set-up")

    async def _start(self) -> None:
        # A handshake's reads run on the message threads: when a server goes down its sockets all
        # come to the other one at once, and on the one database thread their reads queued behind
        # each other past daphne's 5 s handshake timeout, which closed half of them and made them
        # come again (test_chaos.py on a busy machine).
        await message_sync_to_async(services.touch_agent)(agent_id=self.profile.pk)
        state = await message_sync_to_async(self._state)()
        await self.channel_layer.group_add(events.agent_group(self.user.pk), self.channel_name)
        for department_id in self.department_ids:
            await self.channel_layer.group_add(events.department_group(department_id), self.channel_name)
        for conversation in state["conversations"]:
            await self._subscribe(conversation["conversation_id"])
        await self.send_frame(state)

    def _state(self) -> dict[str, Any]:
        from chat.models import AgentProfile, Department

        profile = AgentProfile.objects.get(pk=self.profile.pk)
        self.profile = profile
        username = f"user__{get_user_model().USERNAME_FIELD}"
        departments = list(profile.departments.all())
        self.department_ids = [d.pk for d in departments]
        queue = []
        for department in departments:
            waiting = assignment.queue_positions(department_id=department.pk)
            queue.extend(frames.queue_entry(c, i) for i, c in enumerate(waiting, start=1))
        # Ended chats still waiting for a disposition come back after a reload, to be closed.
        held = selectors.held_conversations(agent=profile) + selectors.awaiting_close(agent=profile)
        others = AgentProfile.objects.exclude(pk=profile.pk).order_by("display_name", "pk").values(
            "user_id", "display_name", "presence", username)
        return frames.agent_state(
            profile, user_id=self.user.pk, departments=departments, queue=queue, held=held, agents=list(others),
            all_departments=[{"id": d.pk, "name": d.name} for d in Department.objects.all()], username_key=username,
        )

    async def layer_resync(self, event: dict[str, Any]) -> None:
        """Catch up in place after a channel-layer outage: a fresh `state` (the client then syncs
        each held chat from the last seq it has, as after a reconnection), and the groups joined
        again to match it: an offer, a transfer or a department change sent meanwhile was lost,
        and the list-based layer's memberships were in the Redis that restarted."""
        prepared = layer_watch.take_prepared(self)
        if prepared is not None and prepared.follows == self._follows():
            # Read for all the process' sockets at once (chat/resync.py) while this one already
            # held these chats and departments: the state, then each held chat's messages after
            # what this socket has (the state's `synced`: its client need not ask).
            # No groups to join again: only the pub/sub layer prepares (layer_watch._prepare), and
            # it kept and resubscribed every membership of the process.
            self.profile = prepared.profile
            state, *histories = prepared.frames
            await self.send_frame(state)
            for history in histories:
                await self.send_frame(history)
                self.delivered.history_frame(history, after_seq=prepared.after.get(history["conversation_id"], 0))
            return
        departments_before = set(self.department_ids)
        state = await layer_watch.catch_up_sync_to_async(self._state)()
        held = {c["conversation_id"] for c in state["conversations"]}
        await self.channel_layer.group_add(events.agent_group(self.user.pk), self.channel_name)
        for department_id in departments_before - set(self.department_ids):
            await self.channel_layer.group_discard(events.department_group(department_id), self.channel_name)
        for department_id in self.department_ids:
            await self.channel_layer.group_add(events.department_group(department_id), self.channel_name)
        for conversation_id in self.conversations - held - self.helping:
            await self._unsubscribe(conversation_id)  # transferred or taken away meanwhile
        self.helping -= held
        for conversation_id in held | self.helping:
            await self._subscribe(conversation_id)
        await self.send_frame(state)

    def _follows(self) -> tuple[frozenset[int], frozenset[int]]:
        return frozenset(self.conversations - self.helping), frozenset(self.department_ids)

    def catch_up_spec(self) -> resync.AgentSocket | None:
        """What this socket holds, for the catch-up of all sockets at once (chat/resync.py)."""
        if getattr(self, "profile", None) is None or not hasattr(self, "user"):
            return None
        held, departments = self._follows()
        return resync.AgentSocket(key=self.channel_name, profile_id=self.profile.pk, user_id=self.user.pk,
                                  conversations=held, department_ids=departments,
                                  after={c: self.delivered.upto(c) for c in held})

    async def disconnect(self, code: int) -> None:
        if getattr(self, "profile", None) is None or not hasattr(self, "user"):
            return
        await self.channel_layer.group_discard(events.agent_group(self.user.pk), self.channel_name)
        for department_id in self.department_ids:
            await self.channel_layer.group_discard(events.department_group(department_id), self.channel_name)
        for conversation_id in list(self.conversations):
            await self.channel_layer.group_discard(events.staff_group(conversation_id), self.channel_name)

    async def _subscribe(self, conversation_id: int) -> None:
        self.conversations.add(conversation_id)
        await self.channel_layer.group_add(events.staff_group(conversation_id), self.channel_name)

    async def _unsubscribe(self, conversation_id: int) -> None:
        self.conversations.discard(conversation_id)
        await self.channel_layer.group_discard(events.staff_group(conversation_id), self.channel_name)

    async def on_presence(self, data: dict[str, Any]) -> None:
        self.profile = await database_sync_to_async(assignment.set_presence)(
            agent=self.profile, status=data.get("status")
        )

    async def on_accept(self, data: dict[str, Any]) -> None:
        conversation_id = _int_field(data, "conversation_id")
        conversation = await database_sync_to_async(assignment.accept_offer)(
            agent=self.profile, conversation_id=conversation_id
        )
        message_fast_path.remember_department(("c", conversation.pk), conversation.department_id)
        await self._subscribe(conversation.pk)
        await self._send_history(conversation.pk, 0)

    async def on_take(self, data: dict[str, Any]) -> None:
        conversation_id = _int_field(data, "conversation_id")
        conversation = await database_sync_to_async(assignment.take_from_queue)(
            agent=self.profile, conversation_id=conversation_id
        )
        message_fast_path.remember_department(("c", conversation.pk), conversation.department_id)
        await self._subscribe(conversation.pk)
        await self._send_history(conversation.pk, 0)

    async def on_decline(self, data: dict[str, Any]) -> None:
        conversation_id = _int_field(data, "conversation_id")
        await database_sync_to_async(assignment.decline_offer)(agent=self.profile, conversation_id=conversation_id)

    async def on_message(self, data: dict[str, Any]) -> None:
        if self._only_helping(data.get("conversation_id")):
            message: Message = await database_sync_to_async(collab.post_helper_note)(
                user=self.user,
                conversation_id=data.get("conversation_id"),
                body=data.get("body"),
                client_id=data.get("client_id"),
                visibility=data.get("visibility", Message.Visibility.PUBLIC),
            )
        else:
            message = await message_fast_path.send_staff_message(
                user=self.user,
                as_agent=True,
                conversation_id=data.get("conversation_id"),
                body=data.get("body"),
                client_id=data.get("client_id"),
                visibility=data.get("visibility", Message.Visibility.PUBLIC),
                canned_id=data.get("canned_id"),
            )
        await self.send_frame(
            {"type": "ack", "client_id": message.client_id, "seq": message.seq, "conversation_id": message.conversation_id}
        )

    async def on_typing(self, data: dict[str, Any]) -> None:
        conversation_id = data.get("conversation_id")
        # Type check first: a list or object id is unhashable (set lookup would raise, turning bad
        # input into "internal"), and True == 1 would pass for conversation 1.
        if not isinstance(conversation_id, int) or isinstance(conversation_id, bool) or (
            conversation_id not in self.conversations or conversation_id in self.helping
        ):
            raise ChatError("No such conversation.", code="not_found")
        frame = {"type": "typing", "conversation_id": conversation_id, "role": "agent",
                 "active": bool(data.get("active", True))}
        await self.channel_layer.group_send(events.visitor_group(conversation_id), {"type": "chat.frame", "frame": frame})
        await self.channel_layer.group_send(events.supervision_group(conversation_id), {"type": "chat.frame", "frame": frame})

    async def on_sync(self, data: dict[str, Any]) -> None:
        conversation_id = data.get("conversation_id")
        last_seq = _int_field(data, "last_seq", default=0)
        if self._only_helping(conversation_id):
            history = await database_sync_to_async(collab.helper_history)(
                user=self.user, conversation_id=conversation_id, after_seq=last_seq
            )
            await self.send_frame(history)
            return
        await self._send_history(conversation_id, last_seq)

    async def _send_history(self, conversation_id: Any, after_seq: int) -> None:
        # One frame per page until a short page: a long absence is delivered in full.
        while True:
            history = await database_sync_to_async(self._history)(conversation_id, after_seq)
            await self.send_frame(history)
            self.delivered.history_frame(history, after_seq=after_seq)
            if len(history["messages"]) < selectors.HISTORY_PAGE:
                return
            after_seq = history["messages"][-1]["seq"]

    def _history(self, conversation_id: Any, after_seq: int) -> dict[str, Any]:
        conversation = selectors.get_conversation_for_staff(
            user=self.user, conversation_id=conversation_id, awaiting_close_too=True
        )
        messages = selectors.staff_messages_after(conversation=conversation, user=self.user, after_seq=after_seq)
        names = display_names([m.sender_id for m in messages if m.sender_id])
        return {
            "type": "history",
            "conversation_id": conversation.pk,
            "conversation": frames.staff_conversation_frame(conversation),
            "messages": [frames.staff_message_frame(m, author=names.get(m.sender_id)) for m in messages],
            "last_seq": conversation.last_seq,
        }

    async def on_end(self, data: dict[str, Any]) -> None:
        disposition = data.get("disposition")
        if disposition is not None:
            dispositions.validate(disposition)  # a bad one must not end the chat half-way
        await database_sync_to_async(services.end_by_staff)(user=self.user, conversation_id=data.get("conversation_id"))
        if disposition is not None:
            await database_sync_to_async(dispositions.close)(
                user=self.user, conversation_id=data.get("conversation_id"), disposition=disposition,
                source_ip=self._client_ip(),
            )

    async def on_close(self, data: dict[str, Any]) -> None:
        await database_sync_to_async(dispositions.close)(
            user=self.user, conversation_id=data.get("conversation_id"), disposition=data.get("disposition"),
            source_ip=self._client_ip(),
        )

    async def on_block(self, data: dict[str, Any]) -> None:
        block = await database_sync_to_async(blocks.block_from_chat)(
            user=self.user, conversation_id=data.get("conversation_id"), by=data.get("by"), reason=data.get("reason")
        )
        await self.send_frame(
            {"type": "blocked", "conversation_id": data.get("conversation_id"), "by": block.kind, "block_id": block.pk}
        )

    def _client_ip(self) -> str | None:
        client = self.scope.get("client")
        return client[0] if client else None

    async def on_transfer(self, data: dict[str, Any]) -> None:
        conversation_id = _int_field(data, "conversation_id")
        to_agent = data.get("to_agent")
        to_department = data.get("to_department")
        for name, value in (("to_agent", to_agent), ("to_department", to_department)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise InvalidInput(f"{name} must be an id.", code="invalid_field")
        await database_sync_to_async(assignment.transfer)(
            agent=self.profile,
            conversation_id=conversation_id,
            to_agent_id=to_agent,
            to_department_id=to_department,
            note=data.get("note") or "",
        )

    async def on_ping(self, data: dict[str, Any]) -> None:
        # A heartbeat, on the message threads: it must not wait behind other work of the process.
        await message_sync_to_async(services.touch_agent)(agent_id=self.profile.pk)
        await self.send_frame({"type": "pong"})

    # --- agent workspace ------------------------------------------------------------------

    def _only_helping(self, conversation_id: Any) -> bool:
        # Type check first: an unhashable id must become not_found downstream, not "internal".
        return isinstance(conversation_id, int) and conversation_id in self.helping

    async def on_canned(self, data: dict[str, Any]) -> None:
        conversation_id = data.get("conversation_id")
        frame = await database_sync_to_async(self._canned)(conversation_id)
        await self.send_frame(frame)

    def _canned(self, conversation_id: Any) -> dict[str, Any]:
        conversation = None
        if conversation_id is not None:
            conversation = selectors.get_conversation_for_staff(user=self.user, conversation_id=conversation_id)
        return {
            "type": "canned",
            "conversation_id": conversation_id,
            "responses": canned.listing(agent=self.profile, conversation=conversation),
        }

    async def on_open(self, data: dict[str, Any]) -> None:
        conversation_id = _int_field(data, "conversation_id")
        if conversation_id in self.conversations and conversation_id not in self.helping:
            # Tagged earlier, holding it now (a transfer): it stays a held chat, with full rights.
            await self._send_history(conversation_id, 0)
            return
        history = await database_sync_to_async(collab.helper_history)(
            user=self.user, conversation_id=conversation_id, after_seq=0
        )
        # Marked before subscribing: a live frame in between must not be mistaken for a held chat's.
        self.helping.add(conversation_id)
        await self._subscribe(conversation_id)
        await self.send_frame(history)

    async def on_visitor(self, data: dict[str, Any]) -> None:
        frame = await database_sync_to_async(visitor_panel.panel_frame)(
            user=self.user, conversation_id=data.get("conversation_id")
        )
        await self.send_frame(frame)

    async def on_dm(self, data: dict[str, Any]) -> None:
        await database_sync_to_async(collab.send_direct_message)(
            sender=self.profile, to=data.get("to"), body=data.get("body"), client_id=data.get("client_id")
        )

    async def on_dm_history(self, data: dict[str, Any]) -> None:
        frame = await database_sync_to_async(collab.direct_messages_with)(agent=self.profile, other=data.get("with"))
        await self.send_frame(frame)

    # --- group events -------------------------------------------------------------------

    async def chat_frame(self, event: dict[str, Any]) -> None:
        frame = event["frame"]
        conversation_id = frame.get("conversation_id")
        if (
            conversation_id is not None
            and frame.get("type") in ("message", "typing", "conversation")
            and conversation_id not in self.conversations
        ):
            return
        if event.get("visibility") == Message.Visibility.WHISPER and self.user.pk not in (
            event.get("whisper_to"),
            event.get("sender_id"),
        ):
            return
        if frame.get("type") == "presence":
            self.profile.presence = frame["status"]
        await self.send_frame(frame)
        if frame.get("type") == "message" and conversation_id in self.conversations:
            self.delivered.live(conversation_id, frame["seq"])

    async def chat_subscribe(self, event: dict[str, Any]) -> None:
        self.helping.discard(event["conversation_id"])  # a helper who is handed the chat now holds it
        await self._subscribe(event["conversation_id"])
        await self.send_frame(event["frame"])

    async def chat_unsubscribe(self, event: dict[str, Any]) -> None:
        await self._unsubscribe(event["conversation_id"])
        await self.send_frame(event["frame"])

