"""Reads of the masking configuration, cached in this process.

Every chat message is masked, so the rules must not cost queries per message. A snapshot of
the settings and enabled rules is kept for at most CACHE_SECONDS; a save in this process drops
it at once (`clear_masking_cache`, called by compliance.services), and other processes (other
daphne workers, Celery) pick the change up when their snapshot expires.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Literal

from django.db.models import Q

from compliance import masking
from compliance.models import MaskingRule, MaskingSettings

logger = logging.getLogger(__name__)

Place = Literal["live", "archive"]
CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class _StoredRule:
    rule: masking.Rule
    live: bool
    archive: bool
    department_ids: frozenset[int]  # empty: every department


@dataclass
class _Snapshot:
    version: int
    loaded_at: float
    settings: MaskingSettings
    rules: tuple[_StoredRule, ...]
    policies: dict[tuple[int | None, Place], masking.Policy] = field(default_factory=dict)


_version = 0
_snapshot: _Snapshot | None = None


def clear_masking_cache() -> None:
    global _version
    _version += 1


def get_masking_settings() -> MaskingSettings:
    """The settings row, or an unsaved one with the defaults if nobody has saved any yet."""
    return MaskingSettings.objects.filter(pk=1).first() or MaskingSettings(pk=1)


def get_masking_policy(*, department_id: int | None, place: Place) -> masking.Policy:
    snapshot = _snapshot
    if not _fresh(snapshot):
        snapshot = _load()
    assert snapshot is not None
    return _policy_of(snapshot, department_id, place)


def cached_masking_policy(*, department_id: int | None, place: Place) -> masking.Policy | None:
    """The policy from this process' snapshot if it is fresh, else None: no query, so it may
    run on the event loop (chat/message_fast_path.py). The same policy get_masking_policy gives."""
    snapshot = _snapshot
    if not _fresh(snapshot):
        return None
    assert snapshot is not None
    return _policy_of(snapshot, department_id, place)


def _fresh(snapshot: _Snapshot | None) -> bool:
    return (
        snapshot is not None
        and snapshot.version == _version
        and time.monotonic() - snapshot.loaded_at <= CACHE_SECONDS
    )


def _policy_of(snapshot: _Snapshot, department_id: int | None, place: Place) -> masking.Policy:
    key = (department_id, place)
    policy = snapshot.policies.get(key)
    if policy is None:
        policy = snapshot.policies[key] = _policy_for(snapshot, department_id, place)
    return policy


def _load() -> _Snapshot:
    global _snapshot
    # Taken before reading, so a save that lands while we read makes this snapshot stale.
    version = _version
    rows = list(
        MaskingRule.objects.filter(Q(live=True) | Q(archive=True), enabled=True).values(
            "pk", "name", "pattern", "live", "archive"
        )
    )
    departments: dict[int, set[int]] = {}
    links = MaskingRule.departments.through.objects.filter(
        maskingrule_id__in=[r["pk"] for r in rows]
    )
    for rule_id, department_id in links.values_list("maskingrule_id", "department_id"):
        departments.setdefault(rule_id, set()).add(department_id)
    rules = []
    for row in rows:
        try:
            pattern = re.compile(row["pattern"])
        except re.error:
            # Admin validates patterns; one written around it must not stop every message.
            logger.error("Masking rule %r has an invalid pattern and is skipped", row["name"])
            continue
        rules.append(
            _StoredRule(
                rule=masking.Rule(name=row["name"], pattern=pattern),
                live=row["live"],
                archive=row["archive"],
                department_ids=frozenset(departments.get(row["pk"], ())),
            )
        )
    snapshot = _Snapshot(version, time.monotonic(), get_masking_settings(), tuple(rules))
    _snapshot = snapshot
    return snapshot


def _policy_for(snapshot: _Snapshot, department_id: int | None, place: Place) -> masking.Policy:
    settings = snapshot.settings
    live = place == "live"
    return masking.Policy(
        cards=settings.cards_live if live else settings.cards_archive,
        ssns=settings.ssns_live if live else settings.ssns_archive,
        keep_last_four=settings.keep_last_four_card_digits,
        rules=tuple(
            stored.rule
            for stored in snapshot.rules
            if (stored.live if live else stored.archive)
            and (not stored.department_ids or department_id in stored.department_ids)
        ),
    )
