"""Transcript archive: what happens to a conversation's record after it ends.

Flow: chat ends a conversation → (after commit) `on_conversation_ended` makes a pending
ConversationArchive and enqueues `compliance.tasks.archive_conversation` → `archive_conversation`
writes the JSON transcript (all metadata) and a readable HTML rendering to the configured storage,
reads the JSON back and checks its sha256, and marks the archive confirmed. A failure is recorded
(state "failed", the error, when to try again) and `retry_due_archives` (Celery beat) tries again
with growing pauses, for ever: a transcript is never silently dropped.

Every body written is masked with the archive rules; everything read back from storage is masked
with the archive rules again, so a rule added later also covers older transcripts when shown.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from chat.models import Conversation, Message, SurveyResponse
from compliance import audit, services
from compliance.models import ArchiveSettings, AuditEntry, ConversationArchive
from compliance.storage import build_storage, get_archive_settings

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
# A pending archive older than this was probably never enqueued (broker down): enqueue again.
STALE_PENDING = timedelta(minutes=10)
MAX_PAUSE = timedelta(hours=1)


class TranscriptUnavailable(Exception):
    """The stored transcript cannot be read back, or does not match its checksum."""


# --- Writing ------------------------------------------------------------------------------


def on_conversation_ended(conversation_id: int) -> None:
    """The chat hook (runs after commit): note the archive as pending and enqueue the work."""
    from compliance import tasks

    conversation = Conversation.objects.filter(pk=conversation_id).only("department_id").first()
    if conversation is None:
        return
    ConversationArchive.objects.get_or_create(
        conversation_number=conversation_id,
        defaults={"conversation_id": conversation_id, "department_id": conversation.department_id},
    )
    try:
        tasks.archive_conversation.delay(conversation_id)
    except Exception:  # broker down: the pending row is retried later
        logger.exception("Could not enqueue the archive of conversation %s", conversation_id)
    if settings.CHAT_INPROCESS_SWEEPER:
        # No beat in the embedded default: each ended chat also retries failures that are due.
        retry_due_archives(limit=10)


def archive_conversation(*, conversation_id: int, now: datetime | None = None) -> ConversationArchive:
    """Archive one ended conversation; idempotent (a confirmed archive is left as it is).

    Storage errors do not raise: they are recorded on the archive, audited, and retried later.
    """
    now = now or timezone.now()
    conversation = (
        Conversation.objects.select_related("department", "agent", "visitor")
        .filter(pk=conversation_id)
        .first()
    )
    if conversation is None:
        raise ValueError(f"conversation {conversation_id} does not exist")
    archive, _ = ConversationArchive.objects.get_or_create(
        conversation_number=conversation_id,
        defaults={"conversation": conversation, "department_id": conversation.department_id},
    )
    if archive.state == ConversationArchive.State.CONFIRMED:
        return archive
    if conversation.is_open:
        raise ValueError(f"conversation {conversation_id} has not ended")

    config = get_archive_settings()
    attempt = archive.attempts + 1
    try:
        document = transcript_document(conversation)
        body = orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
        checksum = hashlib.sha256(body).hexdigest()
        html = render_transcript_html(document).encode()
        target = build_storage(config)
        base = _object_base(conversation, attempt=attempt, at=now)
        location = target.storage.save(f"{base}.json", ContentFile(body))
        html_location = target.storage.save(f"{base}.html", ContentFile(html))
        with target.storage.open(location, "rb") as fh:
            read_back = fh.read()
        if hashlib.sha256(read_back).hexdigest() != checksum:
            raise TranscriptUnavailable("the object read back does not match what was written")
    except Exception as exc:  # noqa: BLE001 - every failure is recorded and retried, none lost
        logger.warning("Archiving conversation %s failed: %s", conversation_id, exc)
        _record_failure(archive_id=archive.pk, attempt=attempt, error=exc, now=now)
        archive.refresh_from_db()
        return archive

    with transaction.atomic():
        archive = ConversationArchive.objects.select_for_update().get(pk=archive.pk)
        if archive.state == ConversationArchive.State.CONFIRMED:
            return archive  # another worker finished first; our copy is an extra, unused object
        archive.state = ConversationArchive.State.CONFIRMED
        archive.backend = config.backend
        archive.location = location
        archive.html_location = html_location
        archive.checksum = checksum
        archive.size = len(body)
        archive.attempts = attempt
        archive.last_error = ""
        archive.next_attempt_at = None
        archive.archived_at = now
        archive.save(
            update_fields=[
                "state", "backend", "location", "html_location", "checksum", "size", "attempts",
                "last_error", "next_attempt_at", "archived_at", "updated_at",
            ]
        )
        dropped = 0
        if config.conduit_mode:
            dropped = _drop_bodies(archive=archive, now=now)
        audit.record(
            action="archive.confirmed",
            target=f"conversation:{conversation_id}",
            details={
                "backend": config.backend,
                "location": location,
                "checksum": checksum,
                "attempt": attempt,
                "bodies_dropped": dropped,
            },
        )
    return archive


def _record_failure(*, archive_id: int, attempt: int, error: BaseException, now: datetime) -> None:
    pause = min(timedelta(seconds=30 * 2 ** min(attempt - 1, 10)), MAX_PAUSE)
    message = f"{type(error).__name__}: {error}"[:2000]
    with transaction.atomic():
        archive = ConversationArchive.objects.select_for_update().get(pk=archive_id)
        if archive.state == ConversationArchive.State.CONFIRMED:
            return
        archive.state = ConversationArchive.State.FAILED
        archive.attempts = attempt
        archive.last_error = message
        archive.next_attempt_at = now + pause
        archive.save(
            update_fields=["state", "attempts", "last_error", "next_attempt_at", "updated_at"]
        )
        audit.record(
            action="archive.failed",
            target=f"conversation:{archive.conversation_number}",
            outcome=AuditEntry.Outcome.FAILURE,
            details={"attempt": attempt, "error": message[:500]},
        )


def _drop_bodies(*, archive: ConversationArchive, now: datetime) -> int:
    """Conduit mode: the archive is confirmed, so the database need not keep the text."""
    dropped = (
        Message.objects.filter(conversation_id=archive.conversation_number)
        .exclude(body="")
        .update(body="")
    )
    # The subject is the start of the first message: it goes too.
    Conversation.objects.filter(pk=archive.conversation_number).update(subject="")
    archive.bodies_dropped_at = now
    archive.save(update_fields=["bodies_dropped_at", "updated_at"])
    return dropped


def retry_due_archives(*, now: datetime | None = None, limit: int = 100) -> int:
    """Enqueue failed archives whose pause is over, and pending ones that look lost."""
    from compliance import tasks

    now = now or timezone.now()
    due = ConversationArchive.objects.filter(
        Q(state=ConversationArchive.State.FAILED, next_attempt_at__lte=now)
        | Q(state=ConversationArchive.State.PENDING, updated_at__lte=now - STALE_PENDING),
        conversation__isnull=False,
    ).values_list("conversation_number", flat=True)[:limit]
    numbers = list(due)
    for number in numbers:
        tasks.archive_conversation.delay(number)
    return len(numbers)


def retry_now(*, user: Any, archive_ids: list[int]) -> int:
    """An administrator's "retry now": failed or pending archives are tried at once."""
    from compliance import tasks

    numbers = list(
        ConversationArchive.objects.filter(pk__in=archive_ids, conversation__isnull=False)
        .exclude(state=ConversationArchive.State.CONFIRMED)
        .values_list("conversation_number", flat=True)
    )
    with transaction.atomic():
        for number in numbers:
            audit.record(
                action="archive.retry",
                actor=user,
                role=audit.role_of(user),
                target=f"conversation:{number}",
            )
    for number in numbers:
        tasks.archive_conversation.delay(number)
    return len(numbers)


def set_legal_hold(*, user: Any, archive_ids: list[int], hold: bool) -> int:
    with transaction.atomic():
        archives = list(
            ConversationArchive.objects.select_for_update()
            .filter(pk__in=archive_ids)
            .exclude(legal_hold=hold)
        )
        for archive in archives:
            archive.legal_hold = hold
            archive.save(update_fields=["legal_hold", "updated_at"])
            audit.record(
                action="retention.legal_hold" if hold else "retention.legal_hold_released",
                actor=user,
                role=audit.role_of(user),
                target=f"conversation:{archive.conversation_number}",
            )
    return len(archives)


def _object_base(conversation: Conversation, *, attempt: int, at: datetime) -> str:
    # A new name for every attempt (and a random part), so nothing ever replaces an object.
    ended = conversation.ended_at or at
    return (
        f"{ended:%Y/%m/%d}/conversation-{conversation.pk}/"
        f"transcript-{attempt}-{secrets.token_hex(4)}"
    )


# --- The transcript document --------------------------------------------------------------


def transcript_document(conversation: Conversation) -> dict[str, Any]:
    """Everything the record of a conversation holds, bodies masked with the archive rules."""
    department_id = conversation.department_id
    visitor = conversation.visitor
    messages = (
        conversation.messages.select_related("sender", "whisper_to").order_by("seq").iterator()
    )
    assignments = conversation.assignments.select_related("agent").order_by("offered_at", "pk")
    survey = SurveyResponse.objects.filter(conversation=conversation).first()
    return {
        "format": "coachline.transcript",
        "version": FORMAT_VERSION,
        "conversation": {
            "id": conversation.pk,
            "department": {"id": department_id, "name": conversation.department.name},
            "status": conversation.status,
            "subject": services.mask_for_archive(conversation.subject, department_id=department_id),
            "is_training": conversation.is_training,
            "created_at": _iso(conversation.created_at),
            "queued_at": _iso(conversation.queued_at),
            "assigned_at": _iso(conversation.assigned_at),
            "first_agent_reply_at": _iso(conversation.first_agent_reply_at),
            "ended_at": _iso(conversation.ended_at),
            "ended_by": conversation.ended_by,
            "agent": conversation.agent.display_name if conversation.agent_id else None,
        },
        "visitor": {
            "id": visitor.pk,
            "name": services.mask_for_archive(visitor.name, department_id=department_id),
            "email": visitor.email,
            "page_url": visitor.page_url,
            "referrer": visitor.referrer,
            "user_agent": visitor.user_agent,
            "ip_address": visitor.ip_address,
        },
        "assignments": [
            {
                "agent": a.agent.display_name,
                "offered_at": _iso(a.offered_at),
                "accepted_at": _iso(a.accepted_at),
                "ended_at": _iso(a.ended_at),
                "end_reason": a.end_reason,
            }
            for a in assignments
        ],
        "messages": [
            {
                "seq": m.seq,
                "public_seq": m.public_seq,
                "role": m.role,
                "sender": m.sender.get_username() if m.sender_id else None,
                "visibility": m.visibility,
                "whisper_to": m.whisper_to.get_username() if m.whisper_to_id else None,
                "body": services.mask_for_archive(m.body, department_id=department_id),
                "meta": m.meta,
                "created_at": _iso(m.created_at),
            }
            for m in messages
        ],
        "survey": (
            {
                "rating": survey.rating,
                "comment": services.mask_for_archive(survey.comment, department_id=department_id),
                "answers": _mask_answers(survey.answers, department_id=department_id),
                "submitted_at": _iso(survey.submitted_at),
            }
            if survey is not None
            else None
        ),
        "archived_at": _iso(timezone.now()),
    }


def _mask_answers(answers: dict[str, Any], *, department_id: int | None) -> dict[str, Any]:
    return {
        k: services.mask_for_archive(v, department_id=department_id) if isinstance(v, str) else v
        for k, v in (answers or {}).items()
    }


def mask_document(document: dict[str, Any]) -> bool:
    """Mask every chat-supplied text of a transcript document in place with the current archive
    rules; True if anything changed. Used on every read from storage and by the re-masking job."""
    department_id = document["conversation"]["department"]["id"]
    changed = False

    def mask(value: str | None) -> str:
        nonlocal changed
        masked = services.mask_for_archive(value or "", department_id=department_id)
        changed = changed or masked != (value or "")
        return masked

    for message in document["messages"]:
        message["body"] = mask(message["body"])
    document["conversation"]["subject"] = mask(document["conversation"]["subject"])
    document["visitor"]["name"] = mask(document["visitor"]["name"])
    survey = document.get("survey")
    if survey:
        survey["comment"] = mask(survey["comment"])
        survey["answers"] = {
            k: mask(v) if isinstance(v, str) else v for k, v in (survey.get("answers") or {}).items()
        }
    return changed


def render_transcript_html(document: dict[str, Any]) -> str:
    """A readable page of the transcript; every text from the chat goes through autoescape."""
    return render_to_string("compliance/transcript_document.html", {"doc": document})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- Reading back ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Transcript:
    document: dict[str, Any]
    source: str  # "database" or "archive"


def can_view_transcript(*, user: Any, conversation_number: int) -> bool:
    """Superusers, holders of the view permission within their departments, and agents who took
    part in the chat."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_superuser:
        return True
    if user.has_perm("compliance.view_conversationarchive"):
        # The permission reaches the departments the user's role covers (compliance officers
        # and administrators: all; a supervisor given it: its own), never further.
        from compliance.roles import department_scope

        scope = department_scope(user)
        if scope is None or ConversationArchive.objects.filter(
            conversation_number=conversation_number, department_id__in=scope
        ).exists():
            return True
    return Conversation.objects.filter(
        pk=conversation_number,
        assignments__agent__user=user,
        assignments__accepted_at__isnull=False,
    ).exists()


def get_archive_for(*, user: Any, conversation_number: int) -> ConversationArchive | None:
    """The archive row if this user may see that transcript; "not allowed" looks like "absent"."""
    if not can_view_transcript(user=user, conversation_number=conversation_number):
        return None
    return (
        ConversationArchive.objects.select_related("conversation")
        .filter(conversation_number=conversation_number)
        .first()
    )


def read_transcript(*, archive: ConversationArchive) -> Transcript:
    """The transcript, from the database while it still holds the bodies, else from storage.

    Either way the bodies are masked with the current archive rules.
    """
    conversation = archive.conversation
    if conversation is not None and archive.bodies_dropped_at is None:
        conversation = (
            Conversation.objects.select_related("department", "agent", "visitor")
            .filter(pk=conversation.pk)
            .get()
        )
        return Transcript(document=transcript_document(conversation), source="database")
    document = orjson.loads(read_archived_json(archive=archive))
    mask_document(document)
    return Transcript(document=document, source="archive")


def dropped_archives(*, conversation_ids: set[int]) -> list[ConversationArchive]:
    """Conduit mode: the archives of these conversations whose bodies left the database."""
    return list(
        ConversationArchive.objects.select_related("conversation").filter(
            conversation_number__in=conversation_ids, bodies_dropped_at__isnull=False
        )
    )


def read_archived_json(*, archive: ConversationArchive) -> bytes:
    if archive.state != ConversationArchive.State.CONFIRMED:
        raise TranscriptUnavailable("the transcript has not been archived yet")
    try:
        target = build_storage()
        with target.storage.open(archive.location, "rb") as fh:
            body = fh.read()
    except Exception as exc:
        raise TranscriptUnavailable(f"the archived transcript cannot be read: {exc}") from exc
    if hashlib.sha256(body).hexdigest() != archive.checksum:
        raise TranscriptUnavailable("the archived transcript does not match its checksum")
    return body


def archive_link(*, archive: ConversationArchive) -> str | None:
    """An expiring link to the JSON object (S3, Azure), or None for the local filesystem."""
    return build_storage().link(archive.location)


def is_conduit_mode() -> bool:
    return get_archive_settings().conduit_mode


__all__ = [
    "ArchiveSettings",
    "Transcript",
    "TranscriptUnavailable",
    "archive_conversation",
    "archive_link",
    "can_view_transcript",
    "get_archive_for",
    "on_conversation_ended",
    "read_archived_json",
    "read_transcript",
    "retry_due_archives",
    "retry_now",
    "set_legal_hold",
]
