"""Export of the audit log for compliance officers: the filters, the access check, the streams.

Entries are streamed in id order in chunks, so the memory an export needs does not grow with the
number of entries. Under ASGI (daphne) the stream must be an async iterator: Django buffers a
sync iterator into one list before sending it there. Under WSGI (and Django's test client) it must
be a sync iterator for the same reason the other way round. The view picks one per request.

Each exported row carries the chain fields (`prev_hash`, `hash`), and JSON Lines keeps every
value exactly as hashed, so an auditor can recompute the chain from an export: sha256 over the
sorted-key JSON of the row without `id` and `hash`, plus `"v": 1`. CSV cells that a spreadsheet
would run as a formula get a leading apostrophe, so only JSON Lines is byte-exact.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import islice
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django import forms
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.utils import timezone

from compliance.audit import HASHED_FIELDS, format_at
from compliance.models import AuditEntry

# Every hashed field, so an auditor can recompute the chain from an export.
COLUMNS = ("id", *HASHED_FIELDS, "hash")
FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
FETCH_CHUNK = 2000  # rows per database round trip
ROWS_PER_WRITE = 1000  # rows per chunk handed to the server


def can_read_audit_log(user: Any) -> bool:
    # Compliance officers and administrators (superusers count as administrators).
    from compliance.roles import can_read_audit_log as role_may_read

    return role_may_read(user)


@dataclass(frozen=True)
class ExportFilters:
    format: str
    date_from: date | None = None
    date_to: date | None = None  # inclusive
    user: str = ""
    action: str = ""  # exact, or a prefix when it ends with "*"
    target: str = ""  # likewise

    def as_details(self) -> dict[str, Any]:
        """The filters as recorded in the export's own audit entry."""
        return {
            "format": self.format,
            "date_from": self.date_from.isoformat() if self.date_from else None,
            "date_to": self.date_to.isoformat() if self.date_to else None,
            "user": self.user,
            "action": self.action,
            "target": self.target,
        }


class ExportForm(forms.Form):
    format = forms.ChoiceField(
        choices=[("csv", "CSV"), ("jsonl", "JSON Lines")],
        error_messages={
            "required": "Choose a format: csv or jsonl.",
            "invalid_choice": "Unknown format %(value)s; choose csv or jsonl.",
        },
    )
    date_from = forms.DateField(
        required=False, label="From (inclusive)", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"})
    )
    user = forms.CharField(required=False, max_length=150, help_text="Username of the actor")
    action = forms.CharField(
        required=False, max_length=100, help_text='Exact, or a prefix ending in "*" (login.*)'
    )
    target = forms.CharField(
        required=False,
        max_length=255,
        help_text='Exact, or a prefix ending in "*" (conversation:*)',
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError(
                f"The date range is backwards: {start.isoformat()} is after {end.isoformat()}."
            )
        return data

    def filters(self) -> ExportFilters:
        data = self.cleaned_data
        return ExportFilters(
            format=data["format"],
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            user=data.get("user") or "",
            action=data.get("action") or "",
            target=data.get("target") or "",
        )


def entries_for_export(
    *, user: Any, filters: ExportFilters, before_id: int | None = None
) -> QuerySet:
    """Rows (tuples in COLUMNS order) matching the filters, in chain order; access-checked.

    `before_id` pins the export to the entries that existed when it started (the view passes
    the id of the export's own entry), so rows appended while it streams are not half included.
    """
    if not can_read_audit_log(user):
        raise PermissionDenied("Only compliance officers may read the audit log.")
    entries = AuditEntry.objects.all()
    if before_id is not None:
        entries = entries.filter(id__lt=before_id)
    if filters.date_from:
        entries = entries.filter(at__gte=_start_of(filters.date_from))
    if filters.date_to:
        entries = entries.filter(at__lt=_start_of(filters.date_to + timedelta(days=1)))
    if filters.user:
        entries = entries.filter(actor_username=filters.user)
    for name in ("action", "target"):
        value = getattr(filters, name)
        if value.endswith("*"):
            entries = entries.filter(**{f"{name}__startswith": value[:-1]})
        elif value:
            entries = entries.filter(**{name: value})
    return entries.order_by("id").values_list(*COLUMNS)


def stream(rows: QuerySet, *, fmt: str) -> Iterator[bytes]:
    """The export as a sync iterator of byte chunks (WSGI)."""
    header, encode = _encoder(fmt)
    if header:
        yield header
    entries = rows.iterator(chunk_size=FETCH_CHUNK)
    while chunk := b"".join(encode(row) for row in islice(entries, ROWS_PER_WRITE)):
        yield chunk


async def astream(rows: QuerySet, *, fmt: str) -> AsyncIterator[bytes]:
    """The same export as an async iterator (ASGI).

    The sync stream is advanced one chunk at a time in Django's sync thread (thread-sensitive,
    so always the same thread and connection); the event loop only hands the bytes on.
    """
    chunks = stream(rows, fmt=fmt)
    advance = sync_to_async(next)
    while (chunk := await advance(chunks, None)) is not None:
        yield chunk


def filename(fmt: str, *, now: datetime | None = None) -> str:
    stamp = (now or timezone.now()).strftime("%Y%m%dT%H%M%SZ")
    return f"audit-log-{stamp}.{fmt}"


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


class _Line:
    """csv.writer needs a file; this one hands back what it is given."""

    def write(self, value: str) -> str:
        return value


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value  # so a spreadsheet shows a typed "=HYPERLINK(...)" instead of running it
    return value


def _csv_encoder() -> Callable[[Iterable[Any]], bytes]:
    writer = csv.writer(_Line())  # one per stream: a writer is not shared between threads

    def line(cells: Iterable[Any]) -> bytes:
        return writer.writerow(cells).encode()  # type: ignore[func-returns-value]

    return line


def _csv_row(line: Callable[[Iterable[Any]], bytes]) -> Callable[[tuple[Any, ...]], bytes]:
    def encode(row: tuple[Any, ...]) -> bytes:
        values = list(row)
        values[1] = format_at(values[1])
        values[9] = orjson.dumps(values[9], option=orjson.OPT_SORT_KEYS).decode()
        return line(_cell(v) for v in values)

    return encode


def _jsonl_row(row: tuple[Any, ...]) -> bytes:
    item = dict(zip(COLUMNS, row, strict=True))
    item["at"] = format_at(item["at"])
    return orjson.dumps(item, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


def _encoder(fmt: str) -> tuple[bytes, Callable[[tuple[Any, ...]], bytes]]:
    """(header, row encoder) for one stream."""
    if fmt == "csv":
        line = _csv_encoder()
        return line(COLUMNS), _csv_row(line)
    if fmt == "jsonl":
        return b"", _jsonl_row
    raise ValueError(f"unknown export format {fmt!r}")
