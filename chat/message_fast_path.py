"""Chat messages stored from the event loop, in one round trip, on PostgreSQL.

Profiled under load (docs/benchmarks.md, "WebSocket load"), a message on the full path cost the
server about three times the bare relay's CPU: a hop to a database thread and back, five round
trips there (begin, lock, resend check, insert, commit), psycopg quoting every parameter in
Python, and the threads and the event loop taking the GIL from each other. Here the common case
is one call of the `chat_post_message` function (chat/migrations/0008) on an async connection of
the event loop's own, prepared on the server: lock with the sender's access check, no resend,
under the rate limit, store, record the first reply, commit.

It is only ever a shortcut. Anything it does not handle exactly as chat.pipeline.run would
(text that fails validation, a resend, a chat not found or not active, a rate limit reached, the
chat's department not the one the text was masked for, masking rules that must be read again, an
after-persist hook that applies, SQLite) makes it return None before or instead of storing
anything, and the caller takes the full path, which answers with the exact result or error. So
both paths store, mask and deliver the same message; the chat tests run on both (embedded: the
full path; real mode: this one), tests/chat/test_message_fast_path.py pins where each is taken.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models.base import ModelState
from django.utils import timezone

from chat import events, pipeline, services
from chat.dbpool import closed_by_peer, message_sync_to_async
from chat.errors import InvalidInput
from chat.models import Conversation, Message


def _array(values: tuple[str, ...]) -> str:
    assert all(v.isidentifier() for v in values)  # fixed choices, written into the SQL below
    return "'{" + ",".join(values) + "}'"


# What is the same for every call of one kind is written into the statement, not sent as a
# parameter: psycopg adapts each parameter in Python on every execution, even of a prepared
# statement (PostgresQuery.convert was 7 % of the server's CPU under load with all 13 sent).
_VISITOR_CALL = (
    f"SELECT * FROM chat_post_message(%s, NULL, NULL, {_array(Conversation.OPEN_STATUSES)}, NULL, %s, "
    f"'{Message.Role.VISITOR}', '{Message.Visibility.PUBLIC}', %s, %s, %s, %s, false)"
)
_AGENT_CALL = (
    f"SELECT * FROM chat_post_message(NULL, %s, %s, {_array(Conversation.HELD_STATUSES)}, "
    f"'{Conversation.Status.ACTIVE}', %s, '{Message.Role.AGENT}', %s, %s, %s, %s, 0, true)"
)
# A call that does not answer in this time has its connection dropped and fails as an outage
# (the client resends; a resend of a message that did commit is answered by the full path).
CALL_TIMEOUT_SECONDS = 5.0


_vendor: str | None = None


def enabled() -> bool:
    global _vendor
    if _vendor is None:
        _vendor = connection.vendor  # fixed for the process; the lookup showed in the profile
    return _vendor == "postgresql" and settings.CHAT_FAST_PATH_CONNECTIONS > 0


# --- where the department hints come from --------------------------------------------------------

# The department each sender's chat was in when last seen: the text is masked for it before the
# call, and the function stores nothing if the chat has moved on (a transfer); the full path then
# masks for the new one and the hint follows. Keyed by ("v", visitor id) or ("c", conversation id).
_departments: dict[tuple[str, int], int] = {}
_HINTS_KEPT = 50_000


def remember_department(key: tuple[str, int], department_id: int | None) -> None:
    if department_id is None:
        return
    if len(_departments) >= _HINTS_KEPT:
        _departments.clear()  # only a hint: the next message of each sender takes the full path
    _departments[key] = department_id


# --- the connections -----------------------------------------------------------------------------


class _Connections:
    """Autocommit connections of one event loop: idle ones are reused, at most `size` open.

    Not psycopg_pool: its workers are tasks of the loop that opened it, and tests run each on a
    loop of its own; this needs only "an idle connection, or a new one, or wait for one".
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.loop = loop
        self.size = size
        self.open = 0
        self.idle: list[psycopg.AsyncConnection] = []
        self.waiters: deque[asyncio.Future[psycopg.AsyncConnection | None]] = deque()

    async def take(self) -> psycopg.AsyncConnection:
        while self.idle:
            conn = self.idle.pop()
            if _usable(conn):
                return conn
            self._discard(conn)
        if self.open >= self.size:
            waiter = self.loop.create_future()
            self.waiters.append(waiter)
            try:
                conn = await waiter
            finally:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)
            if conn is not None:
                return conn
            # A connection was dropped: its place is ours.
        self.open += 1
        try:
            return await psycopg.AsyncConnection.connect(**_connect_params(), autocommit=True, prepare_threshold=0)
        except BaseException:
            self.open -= 1
            self._wake(None)
            raise

    def give_back(self, conn: psycopg.AsyncConnection, *, broken: bool = False) -> None:
        if broken or not _usable(conn):
            self._discard(conn)
            self._wake(None)
        elif not self._wake(conn):
            self.idle.append(conn)

    def _wake(self, conn: psycopg.AsyncConnection | None) -> bool:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    def _discard(self, conn: psycopg.AsyncConnection) -> None:
        self.open -= 1
        conn.pgconn.finish()  # no round trip: the server sees the socket close

    def close(self) -> None:
        for conn in self.idle:
            conn.pgconn.finish()
        self.open -= len(self.idle)
        self.idle.clear()


def _usable(conn: psycopg.AsyncConnection) -> bool:
    """Open, idle and not closed by the other side, tested as the message threads test theirs."""
    return conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE and not closed_by_peer(conn)


def _connect_params() -> dict[str, Any]:
    # Django's own parameters for the default database (its test database in tests), less what
    # only Django's connection wrapper understands.
    params = dict(connection.get_connection_params())
    for key in ("context", "cursor_factory", "prepare_threshold", "server_side_binding"):
        params.pop(key, None)
    params.setdefault("connect_timeout", 2)
    return params


_by_loop: dict[asyncio.AbstractEventLoop, _Connections] = {}


def _connections() -> _Connections:
    loop = asyncio.get_running_loop()
    pool = _by_loop.get(loop)
    if pool is None:
        for old in [old for old in _by_loop if old.is_closed()]:
            _by_loop.pop(old).close()  # a test's loop that has ended
        pool = _by_loop[loop] = _Connections(loop, settings.CHAT_FAST_PATH_CONNECTIONS)
    return pool


def close_all() -> None:
    """Close every idle connection (tests, before their database is dropped)."""
    for pool in _by_loop.values():
        pool.close()
    _by_loop.clear()


async def _call(sql: str, params: list[Any]) -> tuple | None:
    pool = _connections()
    conn = await pool.take()
    broken = True
    try:
        async with asyncio.timeout(CALL_TIMEOUT_SECONDS):
            cursor = await conn.execute(sql, params)
            row = await cursor.fetchone()
        broken = False
        return row
    except TimeoutError:
        raise psycopg.OperationalError(f"the database did not answer within {CALL_TIMEOUT_SECONDS:.0f} s") from None
    finally:
        pool.give_back(conn, broken=broken)


# --- the two kinds of sender ---------------------------------------------------------------------


def _prepared(body: Any, client_id: Any, *, role: str, visibility: str, department_id: int) -> tuple[str, Any] | None:
    """The text as pipeline.run would store it and the client_id, or None for the full path."""
    if pipeline.has_after_persist(visibility):
        return None
    try:
        text = pipeline.clean_body(pipeline.validate_body(body))
        client_id = pipeline.validate_client_id(client_id)
    except InvalidInput:
        return None  # the full path gives the error, after its access check, as always
    if not text:
        return None
    ctx = pipeline.FilterContext(conversation_id=None, department_id=department_id, role=role)
    text = pipeline.filter_text_cached(text, ctx)
    return None if text is None else (text, client_id)


def _message(row: tuple, *, role: str, sender_id: int | None, visibility: str, body: str, client_id: Any,
             created_at: Any) -> Message:
    message_id, conversation_id, seq, public_seq, _ = row
    # The stored row as Model.from_db would give it, without Model.__init__'s per-field work
    # (3 % of the server's CPU under load). Every concrete field is set: a missing one would be
    # loaded by a query on first access, which the event loop must not make.
    message = Message.__new__(Message)
    message.__dict__.update(
        id=message_id, conversation_id=conversation_id, seq=seq, public_seq=public_seq, role=role,
        sender_id=sender_id, visibility=visibility, whisper_to_id=None, body=body, client_id=client_id,
        meta={}, created_at=created_at,
    )
    state = message._state = ModelState()
    state.adding, state.db = False, DEFAULT_DB_ALIAS
    return message


async def _deliver(message: Message, *, author: str | None) -> None:
    # Committed already (one statement in autocommit): the same events the full path sends on
    # commit, sent before the caller acks; send_collected sends them even if the socket closes
    # meanwhile.
    await events.send_collected(pipeline.message_events(message, author=author))


async def post_visitor_message(*, visitor_id: int, body: Any, client_id: Any) -> Message | None:
    """The visitor's message stored and delivered, or None: take services.post_visitor_message."""
    if not enabled():
        return None
    department_id = _departments.get(("v", visitor_id))
    if department_id is None:
        return None
    prepared = _prepared(body, client_id, role=Message.Role.VISITOR, visibility=Message.Visibility.PUBLIC,
                         department_id=department_id)
    if prepared is None:
        return None
    text, client_id = prepared
    now = timezone.now()
    row = await _call(
        _VISITOR_CALL, [visitor_id, department_id, text, client_id, now, settings.CHAT_VISITOR_MESSAGES_PER_MINUTE]
    )
    if row is None:
        return None
    message = _message(row, role=Message.Role.VISITOR, sender_id=None, visibility=Message.Visibility.PUBLIC,
                       body=text, client_id=client_id, created_at=now)
    await _deliver(message, author=None)
    return message


async def post_agent_message(
    *, user_id: int, conversation_id: Any, body: Any, client_id: Any, visibility: Any
) -> Message | None:
    """An agent's message in a chat they hold and have accepted, stored and delivered, or None:
    take services.post_staff_message."""
    if not enabled() or not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
        return None
    if visibility not in (Message.Visibility.PUBLIC, Message.Visibility.INTERNAL):
        return None
    department_id = _departments.get(("c", conversation_id))
    if department_id is None:
        return None
    prepared = _prepared(body, client_id, role=Message.Role.AGENT, visibility=visibility, department_id=department_id)
    if prepared is None:
        return None
    text, client_id = prepared
    now = timezone.now()
    row = await _call(_AGENT_CALL, [conversation_id, user_id, department_id, str(visibility), text, client_id, now])
    if row is None:
        return None
    message = _message(row, role=Message.Role.AGENT, sender_id=user_id, visibility=visibility, body=text,
                       client_id=client_id, created_at=now)
    await _deliver(message, author=row[4])
    return message


# --- what the consumers call ---------------------------------------------------------------------


async def send_visitor_message(*, visitor: Any, body: Any, client_id: Any) -> Message:
    """Store and deliver a visitor's message: here if it can be, else on the full path."""
    message = await post_visitor_message(visitor_id=visitor.pk, body=body, client_id=client_id)
    if message is None:
        message, department_id = await message_sync_to_async(_full_visitor_message)(
            visitor=visitor, body=body, client_id=client_id
        )
        remember_department(("v", visitor.pk), department_id)
    return message


async def send_staff_message(
    *, user: Any, as_agent: bool, conversation_id: Any, body: Any, client_id: Any, visibility: Any, canned_id: Any
) -> Message:
    """Store and deliver a staff member's message: here if it can be, else on the full path.
    `as_agent`: the user has an agent profile (the agent socket knows; asking `user.agent` here
    would be a query on the event loop)."""
    message = None
    if canned_id is None and as_agent:
        message = await post_agent_message(
            user_id=user.pk, conversation_id=conversation_id, body=body, client_id=client_id, visibility=visibility
        )
    if message is None:
        message, department_id = await message_sync_to_async(_full_staff_message)(
            user=user, conversation_id=conversation_id, body=body, client_id=client_id, visibility=visibility,
            canned_id=canned_id,
        )
        remember_department(("c", message.conversation_id), department_id)
    return message


def _full_visitor_message(**kwargs: Any) -> tuple[Message, int]:
    message = services.post_visitor_message(**kwargs)
    return message, message.conversation.department_id


def _full_staff_message(**kwargs: Any) -> tuple[Message, int]:
    message = services.post_staff_message(**kwargs)
    return message, message.conversation.department_id
