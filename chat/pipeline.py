"""The one path every message takes: validate → clean → filters (masking) → persist → broadcast.

Visitor, agent, supervisor and system messages all go through `run`. Later features plug in with
`register_text_filter` (runs before anything is stored, broadcast, queued or logged, so masking
sees raw text first) and `register_after_persist` (audit, metrics), instead of calling around it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat import events, frames, message_store, ratelimit
from chat.errors import Conflict, InvalidInput
from chat.models import Conversation, Message


@dataclass(frozen=True)
class FilterContext:
    conversation_id: int | None
    department_id: int | None
    role: str
    field: str = "message"


TextFilter = Callable[[str, FilterContext], str]
# The same filter without the database: the text, or None if it would need a query (a stale
# cache). The message path on the event loop (chat/message_fast_path.py) runs only these.
CachedTextFilter = Callable[[str, FilterContext], str | None]
AfterPersist = Callable[[Message], None]

_text_filters: list[tuple[TextFilter, CachedTextFilter | None]] = []
_after_persist: list[tuple[AfterPersist, frozenset[str] | None]] = []


def register_text_filter(fn: TextFilter, *, cached: CachedTextFilter | None = None) -> None:
    """`cached`: the filter as it can run on the event loop; without one, every message takes
    the full path through a database thread."""
    if all(fn is not registered for registered, _ in _text_filters):
        _text_filters.append((fn, cached))


def register_after_persist(fn: AfterPersist, *, visibilities: set[str] | None = None) -> None:
    """`visibilities`: the only messages the hook does anything for (None: all). A message no
    hook applies to may be stored from the event loop (chat/message_fast_path.py)."""
    if all(fn is not registered for registered, _ in _after_persist):
        _after_persist.append((fn, frozenset(visibilities) if visibilities is not None else None))


def has_after_persist(visibility: str) -> bool:
    return any(applies is None or visibility in applies for _, applies in _after_persist)


@dataclass(frozen=True, kw_only=True)
class Inbound:
    role: str
    body: Any
    conversation_id: int | None = None
    # Finds and locks the conversation instead of `conversation_id`, in one statement that also
    # checks the sender may write there (chat.message_store.lock_open_for_visitor, lock_held): a
    # round trip less per message, and the check holds under the lock. May annotate
    # `sender_name`, the sender's display name as read with the lock.
    lock: Callable[[], Conversation] | None = None
    sender_id: int | None = None
    visibility: str = Message.Visibility.PUBLIC
    whisper_to_id: int | None = None
    client_id: Any = None
    meta: dict[str, Any] = field(default_factory=dict)
    # The sender's rate limit (visitors): at most this many messages of this role a minute in the
    # conversation, 0 for none. Counted under the row lock, after the resend check and in the
    # same statement: a resend of a stored message is answered, never refused as too fast, and
    # two sockets of one visitor cannot both slip under the limit.
    limit_per_minute: int = 0


_ALLOWED_CONTROL = {"\n", "\t"}


def validate_body(body: Any) -> str:
    if not isinstance(body, str):
        raise InvalidInput("The message text must be a string.")
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if len(body) > limit:
        raise InvalidInput(f"The message is longer than {limit} characters.", code="too_long")
    if not body.strip():
        raise InvalidInput("The message is empty.", code="empty")
    return body


def clean_body(body: str) -> str:
    """NFC-normalise, unify line ends and drop control characters that render invisibly."""
    body = unicodedata.normalize("NFC", body.replace("\r\n", "\n").replace("\r", "\n"))
    body = "".join(ch for ch in body if ch in _ALLOWED_CONTROL or unicodedata.category(ch) != "Cc")
    return body.strip()


def validate_client_id(client_id: Any) -> str | None:
    if client_id is None:
        return None
    if not isinstance(client_id, str) or not (1 <= len(client_id) <= 64) or not client_id.isprintable():
        raise InvalidInput("client_id must be a string of 1 to 64 printable characters.")
    return client_id


def filter_text(text: str, ctx: FilterContext) -> str:
    """Apply the registered filters (masking) to any visitor- or agent-supplied text."""
    for fn, _ in _text_filters:
        text = fn(text, ctx)
    return text


def filter_text_cached(text: str, ctx: FilterContext) -> str | None:
    """`filter_text` without the database, or None if a filter would need it (or has no cached
    form). The same filters in the same order, so the same text comes out."""
    for _, cached in _text_filters:
        if cached is None:
            return None
        filtered = cached(text, ctx)
        if filtered is None:
            return None
        text = filtered
    return text


def run(inbound: Inbound) -> tuple[Message, bool]:
    """Store and deliver one message; returns (message, created). A resend returns the original."""
    with transaction.atomic():
        # The row lock serialises writers of one conversation, so sequence numbers have no gaps
        # or duplicates and a resend of the same client_id sees the first copy. No join that
        # locks more: a locked department row would make every message of a department wait.
        if inbound.lock is not None:
            conversation = inbound.lock()
        else:
            assert inbound.conversation_id is not None, "an Inbound names its conversation or how to lock it"
            conversation = message_store.lock(inbound.conversation_id)
        # After the lock (the access check): "no such chat" comes before "bad text", as always.
        body = clean_body(validate_body(inbound.body))
        if not body:
            raise InvalidInput("The message is empty.", code="empty")
        client_id = validate_client_id(inbound.client_id)
        now = timezone.now()
        limit = inbound.limit_per_minute
        existing, recent = message_store.find_resend(
            conversation, client_id, count_role=inbound.role if limit else None, since=now - timedelta(minutes=1)
        )
        if existing is not None:
            if existing.role != inbound.role or existing.sender_id != inbound.sender_id:
                raise Conflict("That client_id was already used by another sender.", code="duplicate_client_id")
            # Broadcast again: the first copy may have committed while the sender's database
            # connection broke, so its sender got an error instead of the commit, and its
            # on-commit broadcast never ran (tests/realmode/test_chaos.py, PostgreSQL refusing
            # connections). Without this the resend is acked and the other side never sees the
            # message live. Clients drop the repeat by seq (docs/protocol.md).
            existing = Message.objects.get(pk=existing.pk)
            broadcast_message(existing)
            return existing, False
        if limit and recent >= limit:
            raise ratelimit.too_many_messages(limit)
        ctx = FilterContext(conversation_id=conversation.pk, department_id=conversation.department_id, role=inbound.role)
        body = filter_text(body, ctx)
        conversation.last_seq += 1
        counters = ["last_seq"]
        public_seq = None
        if inbound.visibility == Message.Visibility.PUBLIC:
            conversation.last_public_seq += 1
            public_seq = conversation.last_public_seq
            counters.append("last_public_seq")
        message = Message(
            conversation=conversation,
            seq=conversation.last_seq,
            public_seq=public_seq,
            role=inbound.role,
            sender_id=inbound.sender_id,
            visibility=inbound.visibility,
            whisper_to_id=inbound.whisper_to_id,
            body=body,
            client_id=client_id,
            meta=inbound.meta,
            created_at=now,
        )
        message_store.store(conversation, message, counters=counters)
        for hook, applies in _after_persist:
            if applies is None or message.visibility in applies:
                hook(message)
        broadcast_message(message, author=getattr(conversation, "sender_name", None) if inbound.sender_id else None)
    return message, True


def broadcast_message(message: Message, *, author: str | None = None) -> None:
    """`author`: the sender's display name if the caller has it; else it is looked up."""
    if author is None:
        author = sender_display_name(message)
    for group, event in message_events(message, author=author):
        events.send_on_commit(group, event)


def message_events(message: Message, *, author: str | None) -> list[tuple[str, dict[str, Any]]]:
    """The group events that deliver a stored message: its public frame to the chat's visitors
    (public messages only), its staff frame to the chat's staff."""
    sent = []
    if message.visibility == Message.Visibility.PUBLIC:
        sent.append((
            events.visitor_group(message.conversation_id),
            events.event(frames.visitor_message_frame(message, author=author)),
        ))
    sent.append((
        events.staff_group(message.conversation_id),
        events.event(
            frames.staff_message_frame(message, author=author),
            visibility=message.visibility,
            whisper_to=message.whisper_to_id,
            sender_id=message.sender_id,
        ),
    ))
    return sent


def sender_display_name(message: Message) -> str | None:
    if message.role == Message.Role.VISITOR or message.sender_id is None:
        return None
    return display_names([message.sender_id]).get(message.sender_id)


def display_names(user_ids: list[int]) -> dict[int, str]:
    from django.contrib.auth import get_user_model

    users = get_user_model().objects.filter(pk__in=set(user_ids)).select_related("agent")
    names = {}
    for user in users:
        profile = getattr(user, "agent", None)
        names[user.pk] = profile.display_name if profile else (user.get_full_name() or user.get_username())
    return names
