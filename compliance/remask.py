"""Applying the archive masking rules to stored history: a resumable, batched job.

A rule added today masks what is read back from storage from now on (compliance.archive masks on
every read), but the raw text would still sit in the database and in the archived objects. This
job rewrites both, in batches, with a cursor saved in the same transaction as each batch, so a
worker that dies resumes where the last committed batch ended:

1. "messages": message bodies in the database, in id order; then, in the last batch, the other
   chat texts the database keeps (tickets, surveys, transfer notes, visitor names, direct
   messages: see OTHER_TEXTS);
2. "archives": each confirmed archive is read, masked, and written as a NEW object (objects are
   never overwritten), then the row points at it and the old objects are deleted.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import orjson
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from chat.models import Conversation, Message
from compliance import audit, selectors, services
from compliance.archive import mask_document, render_transcript_html
from compliance.models import ConversationArchive, MaskingRule, RemaskJob
from compliance.storage import build_storage

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
ARCHIVE_BATCH_SIZE = 20


def start_remask(*, user: Any, rule: MaskingRule | None = None) -> RemaskJob:
    """Start a job (audited); its task runs after commit."""
    from compliance import tasks

    with transaction.atomic():
        job = RemaskJob.objects.create(rule=rule, requested_by=user)
        audit.record(
            action="masking.remask_started",
            actor=user,
            role=audit.role_of(user),
            target=f"remask_job:{job.pk}",
            details={"rule": rule.name if rule else None},
        )
        transaction.on_commit(lambda: tasks.remask_history.delay(job.pk))
    return job


def run_batch(*, job_id: int) -> bool:
    """Process one batch; returns True when the job is done."""
    job = RemaskJob.objects.get(pk=job_id)
    if job.state == RemaskJob.State.DONE:
        return True
    # The rule that started the job may be seconds old: do not mask with a cached older set.
    selectors.clear_masking_cache()
    if job.phase == RemaskJob.Phase.MESSAGES:
        _message_batch(job_id=job_id)
    else:
        _archive_batch(job_id=job_id)
    job.refresh_from_db()
    return job.state == RemaskJob.State.DONE


def _message_batch(*, job_id: int) -> None:
    with transaction.atomic():
        job = RemaskJob.objects.select_for_update().get(pk=job_id)
        rows = list(
            Message.objects.filter(pk__gt=job.last_message_id)
            .exclude(body="")
            .order_by("pk")
            .values("pk", "body", "conversation_id", "conversation__department_id")[:BATCH_SIZE]
        )
        changed = []
        for row in rows:
            masked = services.mask_for_archive(
                row["body"], department_id=row["conversation__department_id"]
            )
            if masked != row["body"]:
                changed.append(Message(pk=row["pk"], body=masked))
        if changed:
            Message.objects.bulk_update(changed, ["body"])
        # A conversation's subject is the start of its first message: mask it with it.
        subjects = []
        for conversation in Conversation.objects.filter(
            pk__in={row["conversation_id"] for row in rows}
        ).exclude(subject="").only("pk", "subject", "department_id"):
            masked = services.mask_for_archive(
                conversation.subject, department_id=conversation.department_id
            )
            if masked != conversation.subject:
                conversation.subject = masked
                subjects.append(conversation)
        if subjects:
            Conversation.objects.bulk_update(subjects, ["subject"])
        job.messages_changed += len(changed)
        if len(rows) < BATCH_SIZE:
            job.messages_changed += _mask_other_texts()
            job.phase = RemaskJob.Phase.ARCHIVES
        else:
            job.last_message_id = rows[-1]["pk"]
        job.save(update_fields=["messages_changed", "phase", "last_message_id"])


# The other chat texts kept in the database, with the path to the department whose rules apply
# (None: the rules of every department, as for a visitor, who belongs to none).
OTHER_TEXTS: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("chat.TicketMessage", ("body",), "ticket__department_id"),
    ("chat.Ticket", ("subject", "name"), "department_id"),
    ("chat.SurveyResponse", ("comment", "answers"), "conversation__department_id"),
    ("chat.Assignment", ("transfer_note",), "conversation__department_id"),
    ("chat.Visitor", ("name",), None),
    ("chat.DirectMessage", ("body",), None),
)


def _mask_other_texts() -> int:
    """Tickets, surveys, transfer notes, visitor names, direct messages: far fewer rows than
    messages, so done in one pass at the end of the message phase, in that batch's transaction
    (masking is idempotent, so a pass cut short is simply done again)."""
    from django.apps import apps

    changed = 0
    for label, fields, department_path in OTHER_TEXTS:
        model = apps.get_model(label)
        values = ("pk", *fields, *((department_path,) if department_path else ()))
        updates = []
        for row in model.objects.order_by("pk").values(*values).iterator(chunk_size=BATCH_SIZE):
            department_id = row[department_path] if department_path else None
            new = {}
            for name in fields:
                value = row[name]
                if isinstance(value, dict):
                    masked: object = {
                        k: services.mask_for_archive(v, department_id=department_id)
                        if isinstance(v, str) else v
                        for k, v in value.items()
                    }
                else:
                    masked = services.mask_for_archive(value or "", department_id=department_id)
                if masked != (value or ""):
                    new[name] = masked
            if new:
                updates.append((row["pk"], new))
        for pk, new in updates:
            model.objects.filter(pk=pk).update(**new)
        changed += len(updates)
    return changed


def _archive_batch(*, job_id: int) -> None:
    job = RemaskJob.objects.get(pk=job_id)
    archives = list(
        ConversationArchive.objects.filter(
            pk__gt=job.last_archive_id, state=ConversationArchive.State.CONFIRMED
        ).order_by("pk")[:ARCHIVE_BATCH_SIZE]
    )
    target = build_storage() if archives else None
    for record in archives:
        rewritten = False
        with target.storage.open(record.location, "rb") as fh:
            body = fh.read()
        if hashlib.sha256(body).hexdigest() != record.checksum:
            # Never "fix" a tampered object by rewriting it: leave it for the people who check.
            logger.error("Archive of conversation %s fails its checksum", record.conversation_number)
        else:
            document = orjson.loads(body)
            if mask_document(document):
                rewritten = _rewrite(record=record, document=document, target=target)
        with transaction.atomic():
            locked = RemaskJob.objects.select_for_update().get(pk=job_id)
            locked.last_archive_id = record.pk
            locked.archives_rewritten += int(rewritten)
            locked.save(update_fields=["last_archive_id", "archives_rewritten"])
    if len(archives) < ARCHIVE_BATCH_SIZE:
        with transaction.atomic():
            locked = RemaskJob.objects.select_for_update().get(pk=job_id)
            locked.state = RemaskJob.State.DONE
            locked.finished_at = timezone.now()
            locked.save(update_fields=["state", "finished_at"])
            audit.record(
                action="masking.remask_finished",
                target=f"remask_job:{job_id}",
                details={
                    "messages_changed": locked.messages_changed,
                    "archives_rewritten": locked.archives_rewritten,
                },
            )


def _rewrite(*, record: ConversationArchive, document: dict[str, Any], target: Any) -> bool:
    body = orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    checksum = hashlib.sha256(body).hexdigest()
    base = record.location.rsplit(".", 1)[0] + "-remasked"
    location = target.storage.save(f"{base}.json", ContentFile(body))
    html_location = target.storage.save(
        f"{base}.html", ContentFile(render_transcript_html(document).encode())
    )
    old = (record.location, record.html_location)
    with transaction.atomic():
        locked = ConversationArchive.objects.select_for_update().get(pk=record.pk)
        if locked.location != record.location:
            return False  # changed meanwhile; the new objects are unused extras
        locked.location, locked.html_location = location, html_location
        locked.checksum, locked.size = checksum, len(body)
        locked.save(update_fields=["location", "html_location", "checksum", "size", "updated_at"])
        audit.record(
            action="archive.remasked",
            target=f"conversation:{record.conversation_number}",
            details={"old_location": old[0], "location": location, "checksum": checksum},
        )
    # The unmasked copies go only once the row points at the masked ones.
    for name in old:
        if name:
            target.storage.delete(name)
    return True
