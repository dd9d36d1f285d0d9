"""Two-factor login as a user meets it: password, then a code; enrolment; refusals; idle logoff."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from compliance import roles, two_factor
from compliance.auth_views import BAD_CODE
from compliance.models import AuditEntry, RoleSecurity
from tests.auth import session_key_for, staff_client, totp_code, totp_device

PASSWORD = "correct-horse-battery"
LOGIN = "/accounts/login/"


def password_step(client: Client, username: str, *, next_path: str = "/agent/"):
    return client.post(LOGIN, {"username": username, "password": PASSWORD, "next": next_path})


def last(action: str) -> AuditEntry:
    return AuditEntry.objects.filter(action=action).order_by("-id").first()


def test_the_password_alone_logs_nobody_in(client, agent):
    totp_device(agent.user)
    response = password_step(client, "alice")
    assert response.status_code == 302 and response["Location"] == reverse("compliance:login_code")
    # Not logged in yet: the workspace still sends to the login page.
    assert client.get("/agent/")["Location"].startswith(LOGIN)
    entry = last("login.password")
    assert (entry.actor, entry.outcome) == (agent.user, "success")


def test_a_code_from_the_users_device_completes_the_login(client, agent):
    device = totp_device(agent.user)
    password_step(client, "alice")
    response = client.post(reverse("compliance:login_code"), {"code": totp_code(device)})
    assert response.status_code == 302 and response["Location"] == "/agent/"
    assert client.get("/agent/").status_code == 200
    entry = last("login.otp")
    assert (entry.actor, entry.outcome, entry.details["device"]) == (
        agent.user,
        "success",
        device.persistent_id,
    )


def test_forged_replayed_and_other_users_codes_are_refused_alike_and_audited(
    client, agent, second_agent
):
    device = totp_device(agent.user)
    other_device = totp_device(second_agent.user)
    first = Client()
    password_step(first, "alice")
    code = totp_code(device)
    assert first.post(reverse("compliance:login_code"), {"code": code}).status_code == 302

    password_step(client, "alice")
    refusals = {
        "replayed": code,
        "forged": "000000" if code != "000000" else "111111",
        "another user's": totp_code(other_device),
        "garbage": "<script>",
    }
    for what, bad in refusals.items():
        response = client.post(reverse("compliance:login_code"), {"code": bad})
        assert response.status_code == 400, what
        assert BAD_CODE in response.content.decode(), what
        assert client.get("/agent/")["Location"].startswith(LOGIN), what
    failures = AuditEntry.objects.filter(action="login.otp", outcome="failure", actor=agent.user)
    assert failures.count() == len(refusals)


def test_a_backup_code_works_once(client, agent):
    totp_device(agent.user)
    codes = two_factor.replace_backup_codes(user=agent.user)
    password_step(client, "alice")
    assert client.post(reverse("compliance:login_code"), {"code": codes[0]}).status_code == 302
    again = Client()
    password_step(again, "alice")
    response = again.post(reverse("compliance:login_code"), {"code": codes[0]})
    assert response.status_code == 400 and BAD_CODE in response.content.decode()


def test_a_wrong_password_says_nothing_about_the_second_factor(client, agent):
    response = client.post(LOGIN, {"username": "alice", "password": "nope", "next": "/agent/"})
    assert response.status_code == 200
    assert b"didn&#x27;t match" in response.content or b"didn't match" in response.content
    entry = last("login.password")
    assert (entry.outcome, entry.target, entry.actor) == ("failure", "user:alice", None)
    # The code step is not reachable without a correct password.
    assert client.get(reverse("compliance:login_code"))["Location"] == LOGIN


def test_staff_without_a_device_enrol_with_a_qr_code_and_get_backup_codes(client, agent):
    response = password_step(client, "alice")
    assert response["Location"] == reverse("compliance:enrol")
    page = client.get(reverse("compliance:enrol"))
    assert page.status_code == 200 and b"<script" not in page.content
    qr = client.get(reverse("compliance:enrol_qr"))
    assert qr["Content-Type"] == "image/svg+xml" and qr.content.lstrip().startswith(b"<?xml")
    secret = re.search(rb'id="totp-secret">([A-Z2-7=]+)<', page.content).group(1).decode()
    device = TOTPDevice.objects.get(user=agent.user, confirmed=False)
    assert secret.rstrip("=") and device.bin_key == __import__("base64").b32decode(secret)

    forged = "123456" if totp_code(device) != "123456" else "654321"
    wrong = client.post(reverse("compliance:enrol"), {"code": forged})
    assert wrong.status_code == 400 and BAD_CODE in wrong.content.decode()
    time.sleep(1.1)  # django-otp throttles: after one failure the next try waits a second
    done = client.post(reverse("compliance:enrol"), {"code": totp_code(device)})
    assert done.status_code == 200
    codes = re.findall(rb"<li><code>([0-9a-f]+)</code></li>", done.content)
    assert len(codes) == two_factor.BACKUP_CODES
    assert client.get("/agent/").status_code == 200
    device.refresh_from_db()
    assert device.confirmed and StaticDevice.objects.filter(user=agent.user).exists()
    entry = last("2fa.enrol")
    assert (entry.actor, entry.outcome) == (agent.user, "success")


def test_enrolment_is_no_way_round_an_existing_device(client, agent):
    totp_device(agent.user)
    password_step(client, "alice")
    assert client.get(reverse("compliance:enrol"))["Location"] == reverse("compliance:login_code")
    assert client.get(reverse("compliance:enrol_qr")).status_code == 404


def test_a_role_with_two_factor_switched_off_logs_in_with_the_password(client, agent):
    RoleSecurity.objects.update_or_create(
        group=Group.objects.get(name=roles.AGENT), defaults={"require_two_factor": False}
    )
    response = password_step(client, "alice")
    assert response["Location"] == "/agent/"
    assert client.get("/agent/").status_code == 200


def test_superusers_always_need_the_second_factor(client, supervisor):
    RoleSecurity.objects.filter(group__name=roles.SUPERVISOR).update(require_two_factor=False)
    assert two_factor.needs_second_factor(supervisor)


def test_a_session_logged_in_without_the_second_factor_is_ended(client, agent):
    # What a login path that skips the code (a bug, an old session) would leave behind.
    client.cookies["sessionid"] = session_key_for(agent.user, device=None)
    response = client.get("/agent/")
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    assert last("session.end").details == {"reason": "not_verified"}
    assert "_auth_user_id" not in client.session


def test_the_back_office_is_behind_the_second_factor(client, administrator):
    response = client.get("/admin/")
    assert response["Location"].startswith("/admin/login/")
    login = client.get(response["Location"])
    assert login.status_code == 302 and login["Location"].startswith(LOGIN + "?next=")
    staff_client(administrator, client=client)
    assert client.get("/admin/").status_code == 200


def test_idle_sessions_end_and_the_clock_does_not_count_as_activity(client, agent, settings):
    settings.STAFF_IDLE_TIMEOUT_SECONDS = 900
    staff_client(agent.user, client=client)
    status = client.get(reverse("compliance:session")).json()
    assert 890 < status["remaining"] <= 900
    session = client.session
    two_factor.note_activity(session, now=time.time() - 850)
    session.save()
    # Reading the clock does not move it: the warning script polls it.
    assert client.get(reverse("compliance:session")).json()["remaining"] <= 50
    assert client.get(reverse("compliance:session")).json()["remaining"] <= 50
    # "Stay signed in" (a POST) does.
    assert client.post(reverse("compliance:session")).json()["remaining"] > 890
    session = client.session
    two_factor.note_activity(session, now=time.time() - 901)
    session.save()
    response = client.get("/agent/")
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    assert last("session.end").details == {"reason": "idle"}
    assert client.get(reverse("compliance:session")).status_code == 401


def test_pages_for_staff_load_the_idle_warning_script(client, agent):
    staff_client(agent.user, client=client)
    page = client.get("/agent/").content.decode()
    assert "compliance/idle.js" in page and 'data-session-url="/compliance/session/"' in page


@pytest.mark.parametrize("path", [LOGIN, "/compliance/login/code/", "/compliance/login/enrol/"])
def test_login_pages_have_no_inline_script(client, agent, path):
    if path.endswith("code/"):
        totp_device(agent.user)
    if path != LOGIN:
        password_step(client, "alice")
    response = client.get(path)
    assert response.status_code == 200
    assert "<script" not in response.content.decode()  # logged out: not even the idle script


def test_an_administrator_switches_two_factor_per_role_in_admin_and_it_is_audited(
    client, administrator, agent
):
    staff_client(administrator, client=client)
    agent_role = RoleSecurity.objects.get(group__name=roles.AGENT)
    url = reverse("admin:compliance_rolesecurity_change", args=[agent_role.pk])
    response = client.post(url, {"require_two_factor": ""})
    assert response.status_code == 302
    agent_role.refresh_from_db()
    assert agent_role.require_two_factor is False
    entry = last("role.two_factor.change")
    assert (entry.actor, entry.target, entry.details) == (
        administrator,
        "role:Agent",
        {"require_two_factor": False},
    )
    assert not two_factor.needs_second_factor(agent.user)
