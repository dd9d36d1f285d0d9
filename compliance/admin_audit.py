"""Every change made in the back office, and every look at a transcript there, in the audit log.

Django's admin writes a LogEntry for each addition, change and deletion, inside the transaction of
the change itself. Recording the audit entry from that LogEntry (a post_save receiver) covers every
ModelAdmin of every app, present and future, without each one remembering to call `audit.record`
— and it lands in the same transaction, so a rolled-back change leaves no entry. Admin pages that
audit with more detail themselves (masking rules, access policy, archive settings) record both;
the generic entry says who changed which row, the specific one what it means.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry

from compliance import access, audit, passwords, roles

ACTIONS = {ADDITION: "admin.added", CHANGE: "admin.changed", DELETION: "admin.deleted"}


def request_ip() -> str | None:
    request = passwords.current_request.get()
    return access.client_ip(request) if request is not None else None


def record_admin_change(sender: Any, instance: LogEntry, created: bool, **kwargs: Any) -> None:
    if not created:
        return
    content_type = instance.content_type
    audit.record(
        action=ACTIONS.get(instance.action_flag, "admin.other"),
        actor=instance.user,
        role=roles.role_of(instance.user),
        source_ip=request_ip(),
        target=f"{content_type.app_label}.{content_type.model}:{instance.object_id}" if content_type else "",
        details={"object": instance.object_repr[:200], "change": instance.get_change_message()[:1000]},
    )


def record_transcript_view(*, request: Any, conversation_id: int, where: str) -> None:
    """A staff member opened a transcript (back office or workspace page)."""
    audit.record(
        action="transcript.view",
        actor=request.user,
        role=roles.role_of(request.user),
        source_ip=access.client_ip(request),
        target=f"conversation:{conversation_id}",
        details={"where": where},
    )
