"""Administrator rules and settings, as the live pipeline and the archive apply them."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from compliance import selectors, services
from compliance.models import MaskingRule, MaskingSettings

pytestmark = pytest.mark.django_db

CARD = "card 4111 1111 1111 1111"


def make_rule(*, departments=(), **fields) -> MaskingRule:
    fields.setdefault("name", "Employee number")
    fields.setdefault("pattern", r"\bEMP-\d{6}\b")
    rule = MaskingRule(**fields)
    rule.full_clean(exclude=["departments"])
    rule.save()
    rule.departments.set(departments)
    services.reload_masking_rules()
    return rule


def test_a_rule_with_departments_applies_only_there(department, other_department) -> None:
    make_rule(departments=[department])
    assert services.mask_live("id EMP-123456", department_id=department.pk) == "id XXX-XXXXXX"
    assert services.mask_live("id EMP-123456", department_id=other_department.pk) == "id EMP-123456"
    assert services.mask_live("id EMP-123456", department_id=None) == "id EMP-123456"
    assert (
        services.mask_for_archive("id EMP-123456", department_id=department.pk) == "id XXX-XXXXXX"
    )


def test_a_rule_without_departments_applies_everywhere(department) -> None:
    make_rule()
    assert services.mask_live("EMP-123456", department_id=department.pk) == "XXX-XXXXXX"
    assert services.mask_live("EMP-123456", department_id=None) == "XXX-XXXXXX"


def test_live_and_archive_switches(department) -> None:
    make_rule(name="live only", pattern=r"\bLIVE-\d+", archive=False)
    make_rule(name="archive only", pattern=r"\bARCH-\d+", live=False)
    text = "LIVE-123 ARCH-456"
    assert services.mask_live(text, department_id=department.pk) == "XXXX-XXX ARCH-456"
    assert services.mask_for_archive(text, department_id=department.pk) == "LIVE-123 XXXX-XXX"


def test_a_disabled_rule_is_ignored(department) -> None:
    make_rule(enabled=False)
    assert services.mask_live("EMP-123456", department_id=department.pk) == "EMP-123456"


def test_built_in_detectors_follow_the_settings(department) -> None:
    assert services.mask_live(CARD, department_id=department.pk) == "card XXXX XXXX XXXX XXXX"
    MaskingSettings.objects.create(cards_live=False, keep_last_four_card_digits=True)
    services.reload_masking_rules()
    assert services.mask_live(CARD, department_id=department.pk) == CARD
    assert (
        services.mask_for_archive(CARD, department_id=department.pk) == "card XXXX XXXX XXXX 1111"
    )
    assert services.mask_live("ssn 123-45-6789", department_id=None) == "ssn XXX-XX-XXXX"


def test_rules_are_cached_until_reloaded_or_expired(department, monkeypatch) -> None:
    assert services.mask_live("EMP-123456", department_id=None) == "EMP-123456"
    MaskingRule.objects.create(name="r", pattern=r"EMP-\d+")
    # Saved around the admin and services: this process keeps its snapshot for a while ...
    assert services.mask_live("EMP-123456", department_id=None) == "EMP-123456"
    # ... until it expires (other processes rely on this) ...
    monkeypatch.setattr(selectors, "CACHE_SECONDS", 0.0)
    assert services.mask_live("EMP-123456", department_id=None) == "XXX-XXXXXX"
    monkeypatch.undo()
    MaskingRule.objects.all().delete()
    # ... or a save through the admin reloads it at once.
    services.reload_masking_rules()
    assert services.mask_live("EMP-123456", department_id=None) == "EMP-123456"


def test_a_cached_policy_costs_no_queries(department, django_assert_num_queries) -> None:
    make_rule(departments=[department])
    services.mask_live(CARD, department_id=department.pk)
    with django_assert_num_queries(0):
        for _ in range(3):
            services.mask_live(CARD, department_id=department.pk)


def test_a_stored_invalid_pattern_is_skipped_not_fatal(department) -> None:
    MaskingRule.objects.create(name="broken", pattern="(")
    services.reload_masking_rules()
    assert services.mask_live(CARD, department_id=department.pk) == "card XXXX XXXX XXXX XXXX"


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(", "Not a valid regular expression"),
        ("", "empty"),
        ("x*", "can match empty text"),
        (r"\b", "can match empty text"),
        (r"(a+)+$", "too slow"),
        (r"(\w+\s?)+$", "too slow"),
        (r"\d+\d+x", "too slow"),
    ],
)
def test_clean_refuses_bad_patterns(pattern: str, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        MaskingRule(name="bad", pattern=pattern).clean()
    assert message in str(exc.value.message_dict["pattern"])


@pytest.mark.parametrize(
    "pattern",
    [
        r"\bEMP-\d{6}\b",
        r"(?i)\bpassword\s*[:=]\s*\S+",
        r"[\w.+-]{1,64}@[\w-]{1,63}\.[a-z]{2,}",
        r"\d{3}-\d{4}",
    ],
)
def test_clean_accepts_ordinary_patterns(pattern: str) -> None:
    MaskingRule(name="ok", pattern=pattern).clean()


def test_there_is_one_settings_row() -> None:
    assert selectors.get_masking_settings().keep_last_four_card_digits is False
    MaskingSettings.objects.create()
    with pytest.raises(IntegrityError):
        MaskingSettings.objects.create(id=2)
