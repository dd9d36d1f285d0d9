"""Masking as the rest of the system uses it: live in the chat pipeline, and for the archive."""

from __future__ import annotations

from typing import Protocol

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


def reload_masking_rules() -> None:
    """Make this process use the current rules and settings; call after saving or deleting any.

    Dropped now, so the next message in this request already sees the change, and again after
    commit, so a snapshot another thread read before the commit does not live on.
    """
    selectors.clear_masking_cache()
    transaction.on_commit(selectors.clear_masking_cache)
