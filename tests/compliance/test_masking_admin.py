"""The admin for masking rules: the "try it" preview saves nothing; a save applies at once."""

from __future__ import annotations

import pytest
from django.test import Client

from compliance import services
from compliance.models import MaskingRule
from tests.auth import staff_client

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/compliance/maskingrule/add/"


@pytest.fixture
def admin_client_for(supervisor) -> Client:
    client = Client()
    staff_client(supervisor, client=client)
    return client


def form(**overrides: str) -> dict[str, str]:
    data = {
        "name": "Policy number",
        "pattern": r"\bPOL\d{6}\b",
        "enabled": "on",
        "live": "on",
        "archive": "on",
    }
    data.update(overrides)
    return data


def test_try_it_previews_without_saving(admin_client_for) -> None:
    response = admin_client_for.post(ADD_URL, form(try_text="POL123456 and 4111 1111 1111 1111"))
    assert response.status_code == 200
    assert "Preview, nothing saved: XXXXXXXXX and XXXX XXXX XXXX XXXX" in response.content.decode()
    assert not MaskingRule.objects.exists()


def test_a_slow_pattern_is_refused_in_the_form(admin_client_for) -> None:
    response = admin_client_for.post(ADD_URL, form(pattern=r"(a+)+$"))
    assert response.status_code == 200
    assert "too slow" in response.content.decode()
    assert not MaskingRule.objects.exists()


def test_saving_a_rule_applies_it_at_once(admin_client_for, department) -> None:
    assert services.mask_live("POL123456", department_id=department.pk) == "POL123456"
    response = admin_client_for.post(ADD_URL, form(departments=str(department.pk)))
    assert response.status_code == 302
    assert services.mask_live("POL123456", department_id=department.pk) == "XXXXXXXXX"


def test_settings_page_opens(admin_client_for) -> None:
    assert admin_client_for.get("/admin/compliance/maskingsettings/add/").status_code == 200


def test_rule_list_shows_departments(admin_client_for, department) -> None:
    rule = MaskingRule.objects.create(name="Policy number", pattern=r"\bPOL\d{6}\b")
    rule.departments.set([department])
    MaskingRule.objects.create(name="Everywhere", pattern=r"\bSECRET-\d+")
    page = admin_client_for.get("/admin/compliance/maskingrule/").content.decode()
    assert department.name in page and ">all<" in page
    assert admin_client_for.get(f"/admin/compliance/maskingrule/{rule.pk}/change/").status_code == 200
