"""Production settings: `check --deploy` is clean, and every page carries a strict CSP."""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest
from django.test import Client

from tests.serverprocs import PROJECT_ROOT, child_env

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "COACHLINE_HTTPS": "true",
    "ALLOWED_HOSTS": "chat.example.com",
}


def _check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_ROOT,
        env=child_env(env, unset=("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,  # the exit status is what the tests look at
    )


def test_production_settings_pass_check_deploy_without_warnings() -> None:
    result = _check_deploy(PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_without_https_check_deploy_names_what_is_missing() -> None:
    result = _check_deploy({**PRODUCTION, "COACHLINE_HTTPS": "false"})
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in result.stdout + result.stderr


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/chat/", "/accounts/login/"])
def test_pages_carry_a_csp_without_inline_script(path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy
    assert response["X-Frame-Options"] == "DENY"


def test_no_template_has_inline_script_style_or_handlers() -> None:
    import re

    offenders = []
    for template in (PROJECT_ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text) or re.search(
            r"<style\b|\sstyle=|\son[a-z]+\s*=", text
        ):
            offenders.append(str(template.relative_to(PROJECT_ROOT)))
    assert offenders == []
