"""The statements every chat message pays for: lock its chat, look for a resend, store it.

On PostgreSQL they are fixed SQL statements, three per message. Profiled under load
(docs/benchmarks.md), building the ORM's queries (the same six or seven, compiled again for every
message) was the largest part of a message's server CPU. Elsewhere (SQLite, the embedded default)
the ORM says the same thing. tests/chat/test_message_queries.py pins both; the rest of the chat
tests run on both.

Everything here runs inside the pipeline's transaction (chat.pipeline.run). The `lock_*` functions
take the conversation's row lock, which serialises the writers of one chat, and check what the
caller may write in within the same statement; PostgreSQL re-checks that condition against the row
as it is once locked, so a chat ended or handed on while a message waited for the lock is not found.
What a caller needs to know with the lock comes back as attributes on the conversation, as
`annotate()` would set them: `sender_name` and `holder_replied` from `lock_held`.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.db.models import Exists, F, OuterRef

from chat.models import AgentProfile, Assignment, Conversation, Message


def _in_model_order(model: type, names: set[str]) -> list[str]:
    # Model.from_db() takes a subset of the fields in the model's own order.
    return [f.attname for f in model._meta.concrete_fields if f.attname in names]


# The conversation's fields the message path reads; the others load on access, like .only().
_LOCKED_FIELDS = _in_model_order(
    Conversation,
    {"id", "visitor_id", "department_id", "agent_id", "status", "last_seq", "last_public_seq", "first_agent_reply_at"},
)
_COLUMNS = ", ".join(f"c.{name}" for name in _LOCKED_FIELDS)
_C, _M, _A, _S = (
    f'"{model._meta.db_table}"' for model in (Conversation, Message, AgentProfile, Assignment)
)

_LOCK_BY_ID = f"SELECT {_COLUMNS} FROM {_C} c WHERE c.id = %s FOR UPDATE"
# The newest open chat: the same row selectors.open_conversation_for_visitor finds.
_LOCK_OPEN_FOR_VISITOR = (
    f"SELECT {_COLUMNS} FROM {_C} c WHERE c.visitor_id = %s AND c.status = ANY(%s) "
    "ORDER BY c.created_at DESC LIMIT 1 FOR UPDATE"
)
# Held by this user's agent profile (selectors.get_conversation_for_staff's condition), with the
# name the message goes out under and whether the holder's assignment has its first reply already.
_LOCK_HELD = (
    f"SELECT {_COLUMNS}, a.display_name, EXISTS (SELECT 1 FROM {_S} s WHERE s.conversation_id = c.id "
    "AND s.ended_at IS NULL AND s.accepted_at IS NOT NULL AND s.first_reply_at IS NOT NULL) "
    f"FROM {_C} c JOIN {_A} a ON a.id = c.agent_id "
    "WHERE c.id = %s AND a.user_id = %s AND c.status = ANY(%s) FOR UPDATE OF c"
)
_RESEND_FIELDS = _in_model_order(
    Message, {"id", "conversation_id", "seq", "public_seq", "role", "sender_id", "visibility", "client_id", "created_at"}
)
_RESEND_COLUMNS = ", ".join(f"m.{name}" for name in _RESEND_FIELDS)
_RESEND = f"SELECT {_RESEND_COLUMNS} FROM {_M} m WHERE m.conversation_id = %s AND m.client_id = %s"
# Resend check and rate-limit count in one round trip; one row whether or not there is a resend.
_RESEND_AND_COUNT = (
    f"SELECT {_RESEND_COLUMNS}, (SELECT count(*) FROM {_M} WHERE conversation_id = %s AND role = %s "
    f"AND created_at >= %s) FROM (VALUES (1)) AS one (x) LEFT JOIN {_M} m ON m.conversation_id = %s "
    "AND m.client_id = %s"
)
# The counters and the message in one statement (a data-modifying CTE runs to completion whether
# or not its output is read). The new numbers were computed under the row lock.
_STORE = (
    f"WITH counters AS (UPDATE {_C} SET last_seq = %s, last_public_seq = %s WHERE id = %s) "
    f"INSERT INTO {_M} (conversation_id, seq, public_seq, role, sender_id, visibility, whisper_to_id, body, "
    "client_id, meta, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
)


def _fixed_sql() -> bool:
    return connection.vendor == "postgresql"


def _conversation(row: tuple) -> Conversation:
    return Conversation.from_db(connection.alias, _LOCKED_FIELDS, row[: len(_LOCKED_FIELDS)])


def _fetch_one(sql: str, params: list) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def lock(conversation_id: int) -> Conversation:
    """The conversation, locked; Conversation.DoesNotExist if there is none."""
    if not _fixed_sql():
        return Conversation.objects.select_for_update().get(pk=conversation_id)
    row = _fetch_one(_LOCK_BY_ID, [conversation_id])
    if row is None:
        raise Conversation.DoesNotExist(f"no conversation {conversation_id}")
    return _conversation(row)


def lock_open_for_visitor(*, visitor_id: int) -> Conversation | None:
    """The visitor's open chat, locked; None if they have none."""
    if not _fixed_sql():
        return (
            Conversation.objects.select_for_update()
            .filter(visitor_id=visitor_id, status__in=Conversation.OPEN_STATUSES)
            .order_by("-created_at")
            .first()
        )
    row = _fetch_one(_LOCK_OPEN_FOR_VISITOR, [visitor_id, list(Conversation.OPEN_STATUSES)])
    return None if row is None else _conversation(row)


def lock_held(*, user_id: int, conversation_id: int) -> Conversation | None:
    """The chat, locked, if this user's agent profile holds it (offered or active); else None.

    Annotated with `sender_name` (the holder's display name, which a message from them is sent
    under) and `holder_replied` (the holder's assignment has its first reply recorded)."""
    if not _fixed_sql():
        replied = Assignment.objects.filter(
            conversation=OuterRef("pk"), ended_at__isnull=True, accepted_at__isnull=False, first_reply_at__isnull=False
        )
        return (
            # of=("self",): no lock on the agent's row, which every chat of that agent would wait on.
            Conversation.objects.select_for_update(of=("self",))
            .filter(pk=conversation_id, agent__user_id=user_id, status__in=Conversation.HELD_STATUSES)
            .annotate(sender_name=F("agent__display_name"), holder_replied=Exists(replied))
            .first()
        )
    row = _fetch_one(_LOCK_HELD, [conversation_id, user_id, list(Conversation.HELD_STATUSES)])
    if row is None:
        return None
    conversation = _conversation(row)
    conversation.sender_name, conversation.holder_replied = row[len(_LOCKED_FIELDS):]
    return conversation


def find_resend(
    conversation: Conversation, client_id: str | None, *, count_role: str | None = None, since: datetime | None = None
) -> tuple[Message | None, int]:
    """The message already stored under `client_id` in this chat (if any), and, with
    `count_role`, how many messages of that role it has had since `since`. Call under the lock."""
    if not _fixed_sql():
        existing = (
            Message.objects.filter(conversation=conversation, client_id=client_id).first() if client_id else None
        )
        recent = (
            Message.objects.filter(conversation=conversation, role=count_role, created_at__gte=since).count()
            if count_role
            else 0
        )
        return existing, recent
    if count_role:
        row = _fetch_one(_RESEND_AND_COUNT, [conversation.pk, count_role, since, conversation.pk, client_id])
    elif client_id:
        row = _fetch_one(_RESEND, [conversation.pk, client_id])
    else:
        return None, 0
    if row is None:
        return None, 0
    recent = row[len(_RESEND_FIELDS)] if count_role else 0
    if row[0] is None:  # the count's row, without a resend
        return None, recent
    return Message.from_db(connection.alias, _RESEND_FIELDS, row[: len(_RESEND_FIELDS)]), recent


def store(conversation: Conversation, message: Message, *, counters: list[str]) -> None:
    """Save the conversation's `counters` (already advanced) and insert `message`. Under the lock."""
    if not _fixed_sql():
        conversation.save(update_fields=counters)
        message.save(force_insert=True)
        return
    meta = connection.ops.adapt_json_value(message.meta, Message._meta.get_field("meta").encoder)
    row = _fetch_one(
        _STORE,
        [
            conversation.last_seq, conversation.last_public_seq, conversation.pk,
            conversation.pk, message.seq, message.public_seq, message.role, message.sender_id, message.visibility,
            message.whisper_to_id, message.body, message.client_id, meta, message.created_at,
        ],
    )
    assert row is not None  # INSERT … RETURNING returns the row it inserted
    message.pk = row[0]
    message._state.adding = False
    message._state.db = connection.alias
