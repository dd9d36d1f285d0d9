"""The audit log: `record()` appends one entry to a hash chain; `verify_chain()` walks it.

Every sensitive action calls `record()` inside its own transaction, so the change and its audit
entry commit or roll back together (convention 9). This module imports no other project app, so
every app may call it.

Chain: each entry stores `prev_hash` (the `hash` of the entry before it, by id) and its own
`hash` = sha256 over the canonical JSON (sorted keys, orjson) of HASHED_FIELDS. Appends are
serialized so the chain stays one line under concurrency:
- PostgreSQL: `pg_advisory_xact_lock`, held until the caller's transaction ends. Audited
  transactions therefore queue behind each other from their `record()` call to their commit;
  call `record()` as the last statement of a transaction to keep that window short.
- SQLite: the project opens IMMEDIATE transactions, which already hold the database write lock.
The unique constraint on `prev_hash` backs this up: a fork cannot be committed.

What the chain cannot show: entries removed from the *end* leave a shorter valid chain. The head
hash that `verify_audit_log` prints can be kept elsewhere to detect that.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone

from compliance.models import AuditEntry

GENESIS_HASH = "0" * 64
HASHED_FIELDS = (
    "at",
    "actor_id",
    "actor_username",
    "role",
    "source_ip",
    "action",
    "target",
    "outcome",
    "details",
    "prev_hash",
)
# One advisory lock key for the whole chain ("audit" in ASCII); nothing else may use it.
_CHAIN_LOCK_KEY = 0x6175646974
_HASH_VERSION = 1


def record(
    *,
    action: str,
    actor: Any = None,
    role: str = "",
    source_ip: str | None = None,
    target: str = "",
    outcome: str = AuditEntry.Outcome.SUCCESS,
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry. Call it inside the transaction of the change it records.

    `actor` is the user acting (an anonymous user or None for nobody signed in); `target` names
    what was acted on, as "<kind>:<id>" ("conversation:12", "user:alice"); `details` must be
    JSON-serialisable. Text from outside (a typed username) is cut to the column's length.
    """
    if not action or len(action) > 100:
        raise ValueError("action must be 1 to 100 characters")
    if outcome not in AuditEntry.Outcome.values:
        raise ValueError(f"outcome must be one of {AuditEntry.Outcome.values}, got {outcome!r}")
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    entry = AuditEntry(
        actor=user,
        actor_username=_text(user.get_username() if user is not None else "", 150),
        role=_text(role, 100),
        source_ip=_ip(source_ip),
        action=_text(action, 100),
        target=_text(target, 255),
        outcome=outcome,
        details=_json_details(details),
    )
    # savepoint=False: if the append fails, the caller's transaction must not commit the change
    # without its entry, so the failure takes the whole transaction down with it.
    with transaction.atomic(savepoint=False):
        entry.prev_hash = _lock_chain_and_read_head()
        entry.at = timezone.now()  # taken under the lock, so time order follows chain order
        entry.hash = entry_hash({name: getattr(entry, name) for name in HASHED_FIELDS})
        entry.save(force_insert=True)
    return entry


def entry_hash(fields: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of one entry's HASHED_FIELDS (as stored and read back)."""
    payload = {name: fields[name] for name in HASHED_FIELDS}
    payload["at"] = format_at(fields["at"])
    payload["v"] = _HASH_VERSION
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def format_at(at: datetime) -> str:
    """The one text form of an entry's time: UTC, ISO 8601, always with microseconds."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def role_of(user: Any) -> str:
    """A snapshot of the user's role for an entry: "superuser", or the names of its groups."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    if user.is_superuser:
        return "superuser"
    return ", ".join(sorted(user.groups.values_list("name", flat=True)))[:100]


@dataclass
class ChainReport:
    count: int = 0
    head_hash: str = GENESIS_HASH
    broken: list[tuple[int, str]] = field(default_factory=list)  # (entry id, reason), first few
    broken_count: int = 0

    @property
    def ok(self) -> bool:
        return self.broken_count == 0


def verify_chain(*, chunk_size: int = 2000, keep: int = 20) -> ChainReport:
    """Walk every entry in id order (streamed) and check its link and its hash."""
    rows = AuditEntry.objects.order_by("id").values("id", "hash", *HASHED_FIELDS)
    return check_rows(rows.iterator(chunk_size=chunk_size), keep=keep)


def check_rows(rows: Iterable[Mapping[str, Any]], *, keep: int = 20) -> ChainReport:
    report = ChainReport()
    previous = GENESIS_HASH
    for row in rows:
        report.count += 1
        problem = ""
        if row["prev_hash"] != previous:
            problem = (
                "its prev_hash does not match the hash of the entry before it (removed or altered)"
            )
        elif entry_hash(row) != row["hash"]:
            problem = "its contents do not match its hash (edited)"
        if problem:
            report.broken_count += 1
            if len(report.broken) < keep:
                report.broken.append((row["id"], problem))
        previous = row["hash"]
    report.head_hash = previous
    return report


def _lock_chain_and_read_head() -> str:
    """Take the chain for this transaction and return the hash of its last entry.

    Plain SQL: on this hot path the ORM's query building costs more than the query itself.
    """
    table = connection.ops.quote_name(AuditEntry._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
        # SQLite: the IMMEDIATE transaction opened by atomic() already holds the write lock.
        # A separate statement after the lock: in READ COMMITTED each statement sees what was
        # committed when it started, so this one sees the entry of whoever held the lock before.
        cursor.execute(f"SELECT hash FROM {table} ORDER BY id DESC LIMIT 1")
        row = cursor.fetchone()
    return row[0] if row else GENESIS_HASH


def _text(value: str, limit: int) -> str:
    # PostgreSQL refuses NUL in text; attacker-typed text must not turn an audit write into a 500.
    return (value or "").replace("\x00", "\ufffd")[:limit]


def _ip(value: str | None) -> str | None:
    if not value:
        return None
    return str(ipaddress.ip_address(value))  # normalised as the database will return it


def _json_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """Details as they will read back from the database, so the hash computed now still holds.

    One round trip through orjson turns datetimes and UUIDs into strings; integral floats become
    ints because PostgreSQL's jsonb prints 1e16 as 10000000000000000, which reads back as an int.
    """
    if details is None:
        return {}
    if not isinstance(details, Mapping):
        raise TypeError("details must be a mapping")
    try:
        raw = orjson.dumps(details)
    except TypeError as exc:
        raise TypeError(f"audit details must be JSON-serialisable: {exc}") from exc
    return _normalise(orjson.loads(raw))


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {k.replace("\x00", "\ufffd"): _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, float) and value.is_integer():
        # Past 64 bits an int would not serialise; such a float is kept as its text.
        return int(value) if abs(value) < 2**63 else repr(value)
    return value
