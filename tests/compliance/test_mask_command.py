"""`manage.py mask`: standard input to standard output with the active rules."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from compliance import services
from compliance.models import MaskingRule

pytestmark = pytest.mark.django_db


def run_mask(text: str, *args: str) -> str:
    out = io.StringIO()
    call_command("mask", *args, stdin=io.StringIO(text), stdout=out)
    return out.getvalue()


def test_masks_standard_input() -> None:
    text = "hi\nmy card 4111 1111 1111 1111, ssn 123-45-6789\nbye\n"
    assert run_mask(text) == "hi\nmy card XXXX XXXX XXXX XXXX, ssn XXX-XX-XXXX\nbye\n"


def test_department_and_archive_options(department) -> None:
    rule = MaskingRule.objects.create(name="claims", pattern=r"\bCLM-\d{5}\b", live=False)
    rule.departments.set([department])
    services.reload_masking_rules()
    assert run_mask("CLM-12345") == "CLM-12345"
    assert run_mask("CLM-12345", "--department", "support") == "CLM-12345"
    assert run_mask("CLM-12345", "--department", "support", "--archive") == "XXX-XXXXX"


def test_unknown_department_is_an_error() -> None:
    with pytest.raises(CommandError, match="No department"):
        run_mask("x", "--department", "nope")
