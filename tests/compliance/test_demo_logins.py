"""`make run`'s demo logins get their roles and can log in with a printed backup code."""

from __future__ import annotations

import io
import re

from django.core.management import call_command
from django.test import Client

from chat.management.commands.seed_demo import DEMO_PASSWORD
from compliance import roles


def test_seed_demo_gives_roles_and_backup_codes_that_log_in(db):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    printed = dict(re.findall(r"^\s+(\w+)\s+((?:[0-9a-f]{6} ?)+)$", out.getvalue(), re.MULTILINE))
    assert set(printed) == {"alice", "bob", "supervisor", "compliance", "admin"}

    from django.contrib.auth import get_user_model

    users = {u.username: u for u in get_user_model().objects.all()}
    assert roles.role_of(users["supervisor"]) == roles.SUPERVISOR
    assert roles.role_of(users["compliance"]) == roles.COMPLIANCE_OFFICER
    assert roles.role_of(users["admin"]) == roles.ADMINISTRATOR
    assert roles.role_of(users["alice"]) == roles.AGENT

    client = Client()
    response = client.post(
        "/accounts/login/",
        {"username": "compliance", "password": DEMO_PASSWORD, "next": "/compliance/audit/export/"},
    )
    assert response["Location"] == "/compliance/login/code/"
    code = printed["compliance"].split()[0]
    assert client.post("/compliance/login/code/", {"code": code})["Location"] == (
        "/compliance/audit/export/"
    )
    assert client.get("/compliance/audit/export/").status_code == 200
