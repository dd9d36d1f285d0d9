"""Retention: conversations are purged from the database when their department's time is up.

Only a conversation whose archive is confirmed, and which has no legal hold, is ever purged; the
ConversationArchive row stays (with `purged_at`), and each purge is audited in the transaction
that deletes it. Celery beat runs `purge_expired` (see CELERY_BEAT_SCHEDULE).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from chat.models import Conversation, Visitor
from compliance import audit
from compliance.models import AuditEntry, ConversationArchive, RetentionPolicy

logger = logging.getLogger(__name__)


def policies() -> tuple[int | None, dict[int, int]]:
    """(default keep_days or None, {department id: keep_days}) of the enabled policies."""
    default: int | None = None
    per_department: dict[int, int] = {}
    for row in RetentionPolicy.objects.filter(enabled=True).values("department_id", "keep_days"):
        if row["department_id"] is None:
            default = row["keep_days"]
        else:
            per_department[row["department_id"]] = row["keep_days"]
    return default, per_department


def expired_conversation_ids(*, now: datetime, limit: int) -> list[int]:
    """Ended conversations past their department's time, archived, and not on hold."""
    default, per_department = policies()
    candidates = ConversationArchive.objects.filter(
        state=ConversationArchive.State.CONFIRMED,
        legal_hold=False,
        conversation__isnull=False,
        conversation__ended_at__isnull=False,
    )
    ids: list[int] = []
    for department_id, days in per_department.items():
        ids += list(
            candidates.filter(
                conversation__department_id=department_id,
                conversation__ended_at__lt=now - timedelta(days=days),
            ).values_list("conversation_id", flat=True)[: limit - len(ids)]
        )
        if len(ids) >= limit:
            return ids
    if default is not None:
        ids += list(
            candidates.exclude(conversation__department_id__in=list(per_department))
            .filter(conversation__ended_at__lt=now - timedelta(days=default))
            .values_list("conversation_id", flat=True)[: limit - len(ids)]
        )
    return ids


def purge_expired(*, now: datetime | None = None, limit: int = 500) -> int:
    """Purge what has expired; returns how many conversations were removed."""
    now = now or timezone.now()
    purged = 0
    for conversation_id in expired_conversation_ids(now=now, limit=limit):
        if _purge_one(conversation_id=conversation_id, now=now):
            purged += 1
    return purged


def _purge_one(*, conversation_id: int, now: datetime) -> bool:
    try:
        with transaction.atomic():
            archive = (
                ConversationArchive.objects.select_for_update()
                .filter(conversation_id=conversation_id)
                .first()
            )
            # Checked again under the lock: a legal hold set since the list was made wins.
            if (
                archive is None
                or archive.legal_hold
                or archive.state != ConversationArchive.State.CONFIRMED
            ):
                return False
            conversation = Conversation.objects.filter(pk=conversation_id).first()
            if conversation is None or conversation.is_open:
                return False
            message_count = conversation.messages.count()
            details = {
                "department_id": conversation.department_id,
                "ended_at": conversation.ended_at.isoformat() if conversation.ended_at else None,
                "messages": message_count,
                "archive_location": archive.location,
                "archive_checksum": archive.checksum,
            }
            visitor_id = conversation.visitor_id
            conversation.delete()
            # The visitor's name, e-mail and addresses go with their last conversation.
            visitor_purged = False
            if not Conversation.objects.filter(visitor_id=visitor_id).exists():
                visitor_purged = bool(Visitor.objects.filter(pk=visitor_id).delete()[0])
            details["visitor_purged"] = visitor_purged
            archive.purged_at = now
            archive.save(update_fields=["purged_at", "updated_at"])
            audit.record(
                action="retention.purge", target=f"conversation:{conversation_id}", details=details
            )
            return True
    except ProtectedError as exc:
        # Something else still points at the conversation; keep it and say so in the log.
        with transaction.atomic():
            audit.record(
                action="retention.purge",
                target=f"conversation:{conversation_id}",
                outcome=AuditEntry.Outcome.FAILURE,
                details={"error": str(exc)[:500]},
            )
        logger.warning("Retention could not purge conversation %s: %s", conversation_id, exc)
        return False
