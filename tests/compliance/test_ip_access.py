"""Network allowlists for staff: at login, on every staff request, on staff sockets, in admin."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group
from django.test import Client

from compliance.access import client_ip_from
from compliance.models import AuditEntry, IPAllowRule
from config.asgi import application
from tests.auth import staff_client
from tests.chat.helpers import ORIGIN, session_cookie_for

OFFICE = "10.20.0.0/16"
AT_OFFICE = "10.20.3.4"
ELSEWHERE = "203.0.113.50"
PASSWORD = "correct-horse-battery"


def test_forwarded_for_is_ignored_unless_proxies_are_trusted(settings) -> None:
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip_from(peer="192.0.2.1", forwarded_for="10.20.3.4") == "192.0.2.1"
    settings.TRUSTED_PROXY_COUNT = 1
    # The client may write anything on the left; the entry our proxy appended is the last one.
    assert (
        client_ip_from(peer="192.0.2.1", forwarded_for="10.20.3.4, 198.51.100.9") == "198.51.100.9"
    )
    settings.TRUSTED_PROXY_COUNT = 2
    assert (
        client_ip_from(peer="192.0.2.1", forwarded_for="1.2.3.4, 10.20.3.4, 192.0.2.7") == AT_OFFICE
    )
    assert client_ip_from(peer="192.0.2.1", forwarded_for="not-an-address, 192.0.2.7") is None


@pytest.fixture
def agent_role(agent):
    group, _ = Group.objects.get_or_create(name="Agent")
    agent.user.groups.add(group)
    return agent


def _login(ip: str, password: str = PASSWORD):
    client = Client(REMOTE_ADDR=ip)
    return client, client.post("/accounts/login/", {"username": "alice", "password": password})


@pytest.mark.django_db
def test_a_role_rule_refuses_the_login_like_a_wrong_password(agent_role) -> None:
    IPAllowRule.objects.create(network=OFFICE, role="Agent")
    client, refused = _login(ELSEWHERE)
    assert refused.status_code == 200
    assert "didn't match" in refused.content.decode()  # no hint that the password was right
    assert "_auth_user_id" not in client.session
    entry = AuditEntry.objects.get(action="login.ip_refused")
    assert (entry.source_ip, entry.target, entry.outcome) == (ELSEWHERE, "user:alice", "denied")

    _, allowed = _login(AT_OFFICE)
    assert allowed.status_code == 302


@pytest.mark.django_db
def test_rules_for_other_or_missing_roles_do_not_apply(agent_role) -> None:
    # "Supervisor" does not even exist as a group here: the rule simply matches nobody.
    IPAllowRule.objects.create(network=OFFICE, role="Supervisor")
    IPAllowRule.objects.create(network="192.0.2.0/24", role="Agent", enabled=False)
    _, response = _login(ELSEWHERE)
    assert response.status_code == 302


@pytest.mark.django_db
def test_the_global_list_refuses_every_staff_request_but_not_visitors(agent) -> None:
    client = staff_client(agent.user)
    IPAllowRule.objects.create(network=OFFICE)
    refused = client.get("/agent/", REMOTE_ADDR=ELSEWHERE)
    assert refused.status_code == 403
    assert "may not be used from the network" in refused.content.decode()
    entry = AuditEntry.objects.get(action="access.ip_refused")
    assert (entry.actor_username, entry.target, entry.details) == (
        "alice",
        "path:/agent/",
        {"list": "global"},
    )

    assert client.get("/agent/", REMOTE_ADDR=AT_OFFICE).status_code == 200
    assert Client(REMOTE_ADDR=ELSEWHERE).get("/chat/").status_code == 200
    # The refusal page's "Log out" works from the refused network.
    assert client.post("/accounts/logout/", REMOTE_ADDR=ELSEWHERE).status_code == 302
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_forged_forwarded_for_does_not_help_without_trusted_proxies(agent, settings) -> None:
    client = staff_client(agent.user)
    IPAllowRule.objects.create(network=OFFICE)
    settings.TRUSTED_PROXY_COUNT = 0
    assert (
        client.get("/agent/", REMOTE_ADDR=ELSEWHERE, HTTP_X_FORWARDED_FOR=AT_OFFICE).status_code
        == 403
    )
    settings.TRUSTED_PROXY_COUNT = 1
    assert (
        client.get("/agent/", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR=AT_OFFICE).status_code
        == 200
    )


async def _agent_socket_from(ip: str) -> bool:
    cookie = await session_cookie_for("alice")
    comm = WebsocketCommunicator(application, "/ws/agent/", headers=[ORIGIN, (b"cookie", cookie)])
    comm.scope["client"] = (ip, 50000)
    connected, _ = await comm.connect()
    await comm.disconnect()
    return connected


@pytest.mark.django_db(transaction=True)
async def test_staff_sockets_from_a_refused_network_are_not_accepted(agent) -> None:
    await database_sync_to_async(IPAllowRule.objects.create)(network=OFFICE)
    assert not await _agent_socket_from(ELSEWHERE)
    assert await _agent_socket_from(AT_OFFICE)
    entry = await database_sync_to_async(AuditEntry.objects.get)(action="access.ip_refused")
    assert (entry.target, entry.source_ip) == ("socket:/ws/agent/", ELSEWHERE)


@pytest.mark.django_db
def test_saving_a_rule_that_shuts_out_the_administrator_asks_first(supervisor) -> None:
    admin = staff_client(supervisor)
    form = {"network": OFFICE, "role": "", "description": "Head office", "enabled": "on"}
    asked = admin.post("/admin/compliance/ipallowrule/add/", form)
    assert asked.status_code == 200
    assert "would shut you out" in asked.content.decode()
    assert not IPAllowRule.objects.exists()

    # From inside the office network it saves without asking.
    assert (
        admin.post("/admin/compliance/ipallowrule/add/", form, REMOTE_ADDR=AT_OFFICE).status_code
        == 302
    )
    IPAllowRule.objects.all().delete()

    confirmed = admin.post("/admin/compliance/ipallowrule/add/", {**form, "confirm_shutout": "on"})
    assert confirmed.status_code == 302
    rule = IPAllowRule.objects.get()
    assert rule.network == OFFICE
    assert AuditEntry.objects.filter(
        action="config.created", target=f"ipallowrule:{rule.pk}"
    ).exists()
    assert admin.get("/admin/").status_code == 403  # as it warned


@pytest.mark.django_db
def test_a_bad_network_is_refused_with_a_clear_error(supervisor) -> None:
    admin = staff_client(supervisor)
    response = admin.post(
        "/admin/compliance/ipallowrule/add/", {"network": "10.0.0.0/33", "enabled": "on"}
    )
    assert response.status_code == 200
    assert "Not an address or CIDR network" in response.content.decode()
