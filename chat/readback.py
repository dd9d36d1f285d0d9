"""Chat text as it is read back from storage: shown on a page, e-mailed, exported.

Masking rules switched on for the "archive" place (compliance.models.MaskingRule.archive and the
archive switches of MaskingSettings) cover everything read back, while rules switched on only for
"live" cover what is stored. So every path that shows, sends or exports stored chat text —
ticket pages and their CSV, the admin, ticket and transcript e-mails, transcripts in the
workspace and in coaching — takes it through here, and here through the one read function,
`compliance.services.mask_for_archive`. The archived transcript itself is masked by
compliance.archive with the same function.

The functions return copies with masked text for display: they never change what the caller
holds, so nothing masked for one reader can be saved back by accident.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, TypeVar

from compliance.services import mask_for_archive

T = TypeVar("T")


def text(value: str, *, department_id: int | None) -> str:
    """The one read of a stored text (message, subject, name, comment)."""
    return mask_for_archive(value, department_id=department_id) if value else value


def _with(obj: T, department_id: int | None, *fields: str) -> T:
    shown = copy.copy(obj)
    for name in fields:
        setattr(shown, name, text(getattr(obj, name), department_id=department_id))
    return shown


def messages(rows: Iterable[T], *, department_id: int | None) -> list[T]:
    """Chat messages (or ticket messages): `body` masked. In conduit mode the database keeps no
    bodies once the archive is confirmed: chat messages then get theirs from the archive."""
    shown = [_with(m, department_id, "body") for m in rows]
    _fill_from_archive(shown)
    return shown


UNAVAILABLE = "[kept in the archive, which cannot be read now]"


def _fill_from_archive(rows: list[Any]) -> None:
    from compliance import archive

    dropped = {m.conversation_id for m in rows if not m.body and hasattr(m, "seq")}
    if not dropped:
        return
    bodies: dict[tuple[int, int], str] = {}
    for record in archive.dropped_archives(conversation_ids=dropped):
        try:
            document = archive.read_transcript(archive=record).document
        except archive.TranscriptUnavailable:
            for m in rows:
                if m.conversation_id == record.conversation_number and not m.body:
                    bodies[(m.conversation_id, m.seq)] = UNAVAILABLE
            continue
        for line in document["messages"]:
            bodies[(record.conversation_number, line["seq"])] = line["body"]
    for m in rows:
        if not m.body and hasattr(m, "seq"):
            m.body = bodies.get((m.conversation_id, m.seq), m.body)


def ticket(t: T) -> T:
    """A ticket's subject and the visitor's name, masked with its department's rules."""
    return _with(t, getattr(t, "department_id", None), "subject", "name")


def tickets(rows: Iterable[T]) -> list[T]:
    return [ticket(t) for t in rows]


def conversation(c: T) -> T:
    """A conversation's subject (the start of the first message) and its visitor's name."""
    department_id = getattr(c, "department_id", None)
    shown = _with(c, department_id, "subject")
    visitor = getattr(c, "visitor", None)
    if visitor is not None:
        # Safe: a copied model instance has its own related-object cache (Model.__getstate__).
        shown.visitor = _with(visitor, department_id, "name")  # type: ignore[attr-defined]
    return shown


def answers(values: dict[str, Any], *, department_id: int | None) -> dict[str, Any]:
    """Survey answers: the text ones masked."""
    return {
        k: text(v, department_id=department_id) if isinstance(v, str) else v
        for k, v in (values or {}).items()
    }
