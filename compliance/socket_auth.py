"""Staff sockets bound to a live, verified session.

Channels' AuthMiddleware (run on the message threads, compliance.socket_session) resolves the
user once, at the handshake, and knows nothing of OTP. `StaffSocketGuard` sits inside it
(config/asgi.py):

- At connect, a logged-in user counts only if its session is verified by a confirmed device of
  that same user (where its role requires two-factor) and has not gone idle; otherwise the
  consumer sees an anonymous user and refuses the socket as it refuses any stranger.
- While the socket is open it re-checks every STAFF_SOCKET_RECHECK_SECONDS: the session still
  exists (logout deletes it), still belongs to the user with the same password (a password
  change elsewhere), the user is active, holds every role it had at connect, its device is
  still there, and the session is not idle. If not, the client gets close code 4401 and the
  consumer a normal disconnect, so its clean-up runs as for any other goodbye.
- Frames other than keep-alive pings are activity: the next re-check moves the session's idle
  clock on, so an agent chatting for an hour is not logged off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from importlib import import_module
from typing import Any

import orjson
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.base import UpdateError
from django.db import transaction
from django.utils.crypto import constant_time_compare

from chat.dbpool import message_sync_to_async  # a handshake's reads: see AgentConsumer._start
from compliance import audit, roles, two_factor
from compliance.models import AuditEntry

log = logging.getLogger(__name__)

CLOSE_SESSION_ENDED = 4401


@dataclass(frozen=True)
class Grant:
    user_id: int
    session_key: str
    roles: frozenset[str]
    device_id: str | None


def grant_for(*, user: Any, session: Any) -> Grant | None:
    """Whether this handshake's session may act as `user` on a staff socket."""
    if user is None or not user.is_authenticated or not user.is_active or session is None:
        return None
    if session.session_key is None or two_factor.seconds_left(session) <= 0:
        return None
    device = two_factor.session_device(session, user)
    if device is None and two_factor.needs_second_factor(user):
        return None
    return Grant(
        user_id=user.pk,
        session_key=session.session_key,
        roles=roles.role_names(user),
        device_id=device.persistent_id if device is not None else None,
    )


def recheck(grant: Grant, *, active_since_last: bool) -> str:
    """ "" if the socket may stay open, else why not. Moves the idle clock on after activity."""
    engine = import_module(settings.SESSION_ENGINE)
    store = engine.SessionStore(grant.session_key)
    if not store.exists(grant.session_key):
        return "session_ended"
    user = get_user_model().objects.filter(pk=grant.user_id).first()
    if user is None or not user.is_active:
        return "account_disabled"
    if str(store.get(SESSION_KEY)) != str(user.pk) or not constant_time_compare(
        store.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()
    ):
        return "session_ended"
    if not grant.roles <= roles.role_names(user):
        return "role_removed"
    if grant.device_id is not None:
        device = two_factor.session_device(store, user)
        if device is None or device.persistent_id != grant.device_id:
            return "device_removed"
    if two_factor.seconds_left(store) <= 0:
        return "idle"
    if active_since_last:
        two_factor.note_activity(store)
        try:
            store.save()
        except UpdateError:  # deleted between our read and our write: logged out just now
            return "session_ended"
    return ""


def record_close(grant: Grant, reason: str, client_ip: str | None) -> None:
    user = get_user_model().objects.filter(pk=grant.user_id).first()
    with transaction.atomic():
        audit.record(
            action="socket.closed",
            actor=user,
            role=roles.role_of(user) if user else "",
            source_ip=client_ip,
            target=f"user:{user.get_username() if user else grant.user_id}",
            outcome=AuditEntry.Outcome.DENIED,
            details={"reason": reason},
        )


def _is_activity(message: dict[str, Any]) -> bool:
    if message.get("type") != "websocket.receive":
        return False
    text = message.get("text")
    if text is None or len(text) > 200:
        return True
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        return True
    return not (isinstance(frame, dict) and frame.get("type") == "ping")


class StaffSocketGuard:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        user = scope.get("user")
        grant = None
        if user is not None and user.is_authenticated:
            grant = await message_sync_to_async(grant_for)(user=user, session=scope.get("session"))
            if grant is None:
                scope = dict(scope, user=AnonymousUser())
        if grant is None:
            return await self.inner(scope, receive, send)
        return await _Watch(grant, scope, receive, send).run(self.inner)


class _Watch:
    """Relays one socket's messages and re-checks its session on a timer.

    The re-check must be able to end the consumer's wait for the next message with a disconnect.
    Where the server's `receive` is an asyncio.Queue's `get` (daphne, Channels' test
    communicator) that disconnect goes into that queue, and the consumer reads the queue itself,
    with activity noted on the way; anywhere else a pump task relays every message through a
    queue of ours (a task, a put and a get per frame: 4-5 % of the server's CPU under load).
    """

    def __init__(self, grant: Grant, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.grant = grant
        self.scope = scope
        self.receive = receive
        self.send = send
        server_queue = getattr(receive, "__self__", None)
        self.server_queue = server_queue if isinstance(server_queue, asyncio.Queue) else None
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.accepted = False
        self.closed = False
        self.active = False

    async def _receive(self) -> dict[str, Any]:
        message = await self.receive()
        if not self.active and _is_activity(message):  # once is enough until the next re-check
            self.active = True
        return message

    def _end_consumer(self, message: dict[str, Any]) -> None:
        (self.server_queue or self.inbox).put_nowait(message)

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.accept":
            self.accepted = True
        elif message["type"] == "websocket.close":
            self.closed = True
        if self.closed and message["type"] != "websocket.close":
            return  # we closed it: the consumer's late frames go nowhere
        await self.send(message)

    async def _pump(self) -> None:
        while True:
            message = await self._receive()
            await self.inbox.put(message)
            if message["type"] == "websocket.disconnect":
                return

    async def _watch(self) -> None:
        interval = settings.STAFF_SOCKET_RECHECK_SECONDS
        # The first re-check comes at a random point of the first interval: agents whose sockets
        # opened together (a server restart, a Redis outage's reconnections) would otherwise be
        # re-checked together for good, a burst of database work on the process' one database
        # thread every interval (seen in a py-spy profile of tests/realmode/test_chaos.py).
        delay = interval * random.uniform(0.5, 1.0)
        while True:
            await asyncio.sleep(delay)
            delay = interval
            if not self.accepted or self.closed:
                continue
            active, self.active = self.active, False
            try:
                reason = await database_sync_to_async(recheck)(self.grant, active_since_last=active)
            except Exception:
                log.exception("staff socket re-check failed; trying again next round")
                continue
            if reason:
                client = self.scope.get("client")
                await database_sync_to_async(record_close)(
                    self.grant, reason, client[0] if client else None
                )
                await self._send({"type": "websocket.close", "code": CLOSE_SESSION_ENDED})
                self._end_consumer({"type": "websocket.disconnect", "code": CLOSE_SESSION_ENDED})
                return

    async def run(self, inner: Any) -> Any:
        tasks = [asyncio.ensure_future(self._watch())]
        if self.server_queue is not None:
            receive = self._receive
        else:
            tasks.append(asyncio.ensure_future(self._pump()))
            receive = self.inbox.get
        try:
            return await inner(self.scope, receive, self._send)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
