"""Masking as the rest of the system uses it: live in the chat pipeline, and for the archive."""

from __future__ import annotations

from typing import Any, Protocol

from django.db import transaction

from compliance import masking, selectors


def mask_live(text: str, *, department_id: int | None) -> str:
    """Mask text before anyone sees or anything stores it (rules switched on for "live")."""
    return masking.mask(
        text, selectors.get_masking_policy(department_id=department_id, place="live")
    )


def mask_for_archive(text: str, *, department_id: int | None) -> str:
    """Mask text read back from storage: transcripts, exports, e-mails, the archive."""
    return masking.mask(
        text, selectors.get_masking_policy(department_id=department_id, place="archive")
    )


class _FilterContext(Protocol):
    # The part of chat.pipeline.FilterContext masking needs; a protocol keeps chat out of imports.
    @property
    def department_id(self) -> int | None: ...


def mask_chat_text(text: str, ctx: _FilterContext) -> str:
    """The chat pipeline's text filter: every role and every field, agents' messages included,
    so an agent cannot send a full card number back to a visitor either."""
    return mask_live(text, department_id=ctx.department_id)


def mask_chat_text_cached(text: str, ctx: _FilterContext) -> str | None:
    """`mask_chat_text` from the cached rules only; None when they must be read again first."""
    policy = selectors.cached_masking_policy(department_id=ctx.department_id, place="live")
    return None if policy is None else masking.mask(text, policy)


def reload_masking_rules() -> None:
    """Make this process use the current rules and settings; call after saving or deleting any.

    Dropped now, so the next message in this request already sees the change, and again after
    commit, so a snapshot another thread read before the commit does not live on.
    """
    selectors.clear_masking_cache()
    transaction.on_commit(selectors.clear_masking_cache)


# --- Staff access policy (edited in admin) ----------------------------------------------------


def save_access_setting(*, obj: Any, actor: Any, source_ip: str | None, created: bool) -> None:
    """Save a password policy or IP allow rule and audit the change, in one transaction."""
    from django.forms.models import model_to_dict

    from compliance import audit

    with transaction.atomic():
        obj.save()
        audit.record(
            action="config.created" if created else "config.changed",
            actor=actor,
            role=audit.role_of(actor),
            source_ip=source_ip,
            target=f"{obj._meta.model_name}:{obj.pk}",
            details={k: str(v) for k, v in model_to_dict(obj).items()},
        )


def delete_access_setting(*, obj: Any, actor: Any, source_ip: str | None) -> None:
    from compliance import audit

    with transaction.atomic():
        target = f"{obj._meta.model_name}:{obj.pk}"
        description = str(obj)
        obj.delete()
        audit.record(
            action="config.deleted",
            actor=actor,
            role=audit.role_of(actor),
            source_ip=source_ip,
            target=target,
            details={"was": description},
        )


def clear_lockouts(*, attempts: Any, actor: Any, source_ip: str | None) -> None:
    """An administrator clears login lockouts (django-axes AccessAttempt rows)."""
    from compliance import audit

    with transaction.atomic():
        cleared = [f"{a.username}@{a.ip_address}" for a in attempts]
        attempts.delete()
        audit.record(
            action="login.lockout_cleared",
            actor=actor,
            role=audit.role_of(actor),
            source_ip=source_ip,
            target="lockouts",
            details={"cleared": cleared},
        )
