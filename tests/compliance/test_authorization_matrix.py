"""Who may reach what: every role against every page, admin change list, export and socket action.

Each row names a thing and the answer every persona must get; allowed and refused are both
asserted. A new page, admin model, export or socket action adds a row here: the completeness
tests fail while an admin model or a URL has no row. Runs in both modes (no realmode marker).

Personas: the four roles (a supervisor by role alone, with no superuser flag), anonymous, and a
visitor holding a token of its own who tries to reach another visitor's chat.
"""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib import admin
from django.test import Client
from django.urls import get_resolver, reverse

from chat.models import Conversation
from config.asgi import application
from tests.auth import staff_client, staff_session_cookie
from tests.chat.helpers import ORIGIN, visitor_socket

AGENT, SUPERVISOR, COMPLIANCE, ADMIN, ANON = (
    "agent",
    "supervisor",
    "compliance officer",
    "administrator",
    "anonymous",
)
ROLES = (AGENT, SUPERVISOR, COMPLIANCE, ADMIN, ANON)
LOGIN = "login"  # a redirect to the login page
OK, FORBIDDEN, UNAUTHORIZED = 200, 403, 401


def everyone(status: int) -> dict[str, Any]:
    return dict.fromkeys(ROLES, status)


def staff(allowed: set[str]) -> dict[str, Any]:
    """Logged-in roles in `allowed` get 200, other roles 403, anonymous the login page."""
    return {role: (OK if role in allowed else FORBIDDEN) for role in ROLES[:-1]} | {ANON: LOGIN}


# --- pages and endpoints (GET) ----------------------------------------------------------------

PAGES: dict[str, dict[str, Any]] = {
    "/": everyone(OK),
    "/chat/": everyone(OK),
    "/healthz": everyone(OK),
    "/accounts/login/": everyone(OK),
    # Agents and supervisors work the queue (a supervisor has an AgentProfile for its departments).
    "/agent/": staff({AGENT, SUPERVISOR}),
    "/compliance/audit/export/": staff({COMPLIANCE, ADMIN}),
    "/compliance/audit/export/?format=csv": staff({COMPLIANCE, ADMIN}),
    "/compliance/audit/export/?format=jsonl": staff({COMPLIANCE, ADMIN}),
    "/compliance/session/": {**everyone(OK), ANON: UNAUTHORIZED},
    # Without a pending password step the code and enrolment pages start the login over.
    "/compliance/login/code/": everyone(LOGIN),
    "/compliance/login/enrol/": everyone(LOGIN),
    "/compliance/login/enrol/qr.svg": everyone(404),
    # The admin index: any staff member sees it (with only what its permissions allow).
    "/admin/": {**everyone(OK), ANON: "/admin/login/"},
    "/readyz": everyone(OK),
    # The widget's public side: any site visitor may load its configuration and the demo page.
    "/widget/config/": everyone(OK),
    "/widget/demo/": everyone(OK),
    # The workspace's own pages are for people with an agent profile (404: no profile).
    "/agent/canned/": {**staff({AGENT, SUPERVISOR}), COMPLIANCE: 404, ADMIN: 404},
    "/agent/profile/": {**staff({AGENT, SUPERVISOR}), COMPLIANCE: 404, ADMIN: 404},
    "/agent/my-stats/": staff({AGENT, SUPERVISOR}),
    "/tickets/": staff({AGENT, SUPERVISOR}),
    # Everyone staff has a coaching inbox (empty unless reviews were shared with them).
    "/coaching/": staff({AGENT, SUPERVISOR, COMPLIANCE, ADMIN}),
    "/coaching/insight/canned/": staff({SUPERVISOR, ADMIN}),
    "/coaching/mock/": staff({SUPERVISOR, ADMIN}),
    "/coaching/live/": staff({SUPERVISOR, ADMIN}),
    "/accounts/password/change/": staff({AGENT, SUPERVISOR, COMPLIANCE, ADMIN}),
    "/admin/reporting/reportingsettings/dashboard/": {
        **staff({SUPERVISOR, ADMIN}), ANON: "/admin/login/",
    },
    "/admin/reporting/reportingsettings/dashboard/conversations/": {
        **staff({SUPERVISOR, ADMIN}), ANON: "/admin/login/",
    },
}

# URL patterns the rows above cover (admin's own are covered by ADMIN_CHANGELISTS).
COVERED_PATTERNS = {
    "",
    "chat/",
    "agent/",
    "healthz",
    "accounts/login/",
    "accounts/logout/",
    "compliance/",
    "admin/",
    "accounts/password/",
    "coaching/",
}

# --- admin change lists -------------------------------------------------------------------------

ADMIN_CHANGELISTS: dict[str, set[str]] = {
    "auth.user": {ADMIN},
    "auth.group": {ADMIN},
    "otp_totp.totpdevice": {ADMIN},
    "otp_static.staticdevice": {ADMIN},
    "chat.conversation": {SUPERVISOR, COMPLIANCE, ADMIN},
    "chat.department": {SUPERVISOR, ADMIN},
    "chat.agentprofile": {SUPERVISOR, ADMIN},
    "chat.visitor": {ADMIN},
    "chat.cannedresponse": {AGENT, SUPERVISOR, ADMIN},
    "compliance.maskingrule": {COMPLIANCE, ADMIN},
    "compliance.maskingsettings": {COMPLIANCE, ADMIN},
    "compliance.auditentry": {COMPLIANCE, ADMIN},
    "compliance.rolesecurity": {ADMIN},
    "compliance.passwordpolicy": {ADMIN},
    "compliance.ipallowrule": {ADMIN},
    "axes.accessattempt": {ADMIN},
    "axes.accessfailurelog": {ADMIN},
    "axes.accesslog": {ADMIN},
    # Storage settings hold secrets: administrators only. Archives, holds and retention are the
    # compliance officer's.
    "compliance.archivesettings": {ADMIN},
    "compliance.conversationarchive": {COMPLIANCE, ADMIN},
    "compliance.retentionpolicy": {COMPLIANCE, ADMIN},
    "compliance.remaskjob": {COMPLIANCE, ADMIN},
    "compliance.contentsafetysettings": {COMPLIANCE, ADMIN},
    "chat.allowedorigin": {ADMIN},
    "chat.crmlookup": {ADMIN},
    # Agents' private messages to each other: not a supervisor's reading.
    "chat.directmessage": {ADMIN},
    "chat.invitationrule": {SUPERVISOR, ADMIN},
    "chat.proactiveinvitation": {SUPERVISOR, ADMIN},
    "chat.surveyquestion": {SUPERVISOR, ADMIN},
    "chat.surveyresponse": {SUPERVISOR, ADMIN},
    "chat.ticket": {SUPERVISOR, ADMIN},
    "chat.widgetdepartmentsettings": {SUPERVISOR, ADMIN},
    # Blocks agents made: supervisors review and lift them. What files may be sent: administrators.
    "chat.visitorblock": {SUPERVISOR, ADMIN},
    "chat.attachmentsettings": {ADMIN},
    "coaching.review": {SUPERVISOR, ADMIN},
    "coaching.samplingrule": {SUPERVISOR, ADMIN},
    "coaching.scenario": {SUPERVISOR, ADMIN},
    "coaching.scorecard": {SUPERVISOR, ADMIN},
    "reporting.metricreport": {SUPERVISOR, ADMIN},
    "django_celery_beat.clockedschedule": {ADMIN},
    "django_celery_beat.crontabschedule": {ADMIN},
    "django_celery_beat.intervalschedule": {ADMIN},
    "django_celery_beat.periodictask": {ADMIN},
    "django_celery_beat.solarschedule": {ADMIN},
    "reporting.reportingsettings": {SUPERVISOR, ADMIN},
}
# What an allowed role gets instead of the list: single-row settings go straight to their row.
ADMIN_ALLOWED_OUTCOME = {
    "reporting.reportingsettings": "/admin/reporting/reportingsettings/1/change/",
}


def _changelist_url(label: str) -> str:
    app_label, model = label.split(".")
    return reverse(f"admin:{app_label}_{model}_changelist")


@pytest.fixture
def clients(agent, department_supervisor, compliance_officer, administrator) -> dict[str, Client]:
    return {
        AGENT: staff_client(agent.user),
        SUPERVISOR: staff_client(department_supervisor),
        COMPLIANCE: staff_client(compliance_officer),
        ADMIN: staff_client(administrator),
        ANON: Client(),
    }


def _outcome(response) -> Any:
    if response.status_code == 302:
        location = response["Location"]
        if location.startswith("/accounts/login/"):
            return LOGIN
        return location.split("?")[0]
    if getattr(response, "streaming", False):
        b"".join(response.streaming_content)
    return response.status_code


def test_every_admin_model_and_url_has_a_row():
    registered = {model._meta.label_lower for model in admin.site._registry}
    assert registered == set(ADMIN_CHANGELISTS), (
        "add a row to ADMIN_CHANGELISTS for every admin model (and drop rows of removed ones)"
    )
    patterns = {str(p.pattern) for p in get_resolver().url_patterns}
    assert patterns <= COVERED_PATTERNS, f"add rows for {patterns - COVERED_PATTERNS}"


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_pages_and_exports(clients, role):
    wrong = {}
    for path, expected in PAGES.items():
        got = _outcome(clients[role].get(path))
        if got != expected[role]:
            wrong[path] = f"expected {expected[role]}, got {got}"
    assert not wrong, f"{role}: {wrong}"


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_admin_change_lists(clients, role):
    wrong = {}
    for label, allowed in ADMIN_CHANGELISTS.items():
        expected = (
            ADMIN_ALLOWED_OUTCOME.get(label, OK)
            if role in allowed
            else (FORBIDDEN if role != ANON else "/admin/login/")
        )
        got = _outcome(clients[role].get(_changelist_url(label)))
        if got != expected:
            wrong[label] = f"expected {expected}, got {got}"
    assert not wrong, f"{role}: {wrong}"


# --- sockets ---------------------------------------------------------------------------------

# Who may open the agent socket; an accepted socket then only reaches its own conversations.
AGENT_SOCKET = {AGENT: True, SUPERVISOR: True, COMPLIANCE: False, ADMIN: False, ANON: False}


async def _staff_socket(cookie: str | None) -> tuple[bool, WebsocketCommunicator]:
    headers = [ORIGIN] + ([(b"cookie", cookie.encode())] if cookie else [])
    comm = WebsocketCommunicator(application, "/ws/agent/", headers=headers)
    connected, _ = await comm.connect()
    return connected, comm


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("role", ROLES)
async def test_agent_socket_and_its_actions(
    role, department, agent, second_agent, department_supervisor, compliance_officer, administrator
):
    users = {
        AGENT: agent.user,
        SUPERVISOR: department_supervisor,
        COMPLIANCE: compliance_officer,
        ADMIN: administrator,
    }
    # A chat held by the second agent: nobody else's socket may read or act on it.
    visitor, _welcome = await visitor_socket()
    await visitor.send_json_to(
        {"type": "start", "department": "support", "name": "Vic", "message": "hello"}
    )
    await _skip_pending(visitor)
    conversation_id = await database_sync_to_async(_hold_by)(second_agent)

    cookie = None
    if role in users:
        cookie = await database_sync_to_async(staff_session_cookie)(users[role])
    connected, comm = await _staff_socket(cookie)
    assert connected is AGENT_SOCKET[role]
    if connected:
        await _skip_pending(comm)
        for frame in (
            {"type": "sync", "conversation_id": conversation_id, "last_seq": 0},
            {"type": "message", "conversation_id": conversation_id, "body": "hi", "client_id": "x"},
            {"type": "end", "conversation_id": conversation_id},
            {
                "type": "transfer",
                "conversation_id": conversation_id,
                "to_department": department.pk,
            },
        ):
            await comm.send_json_to(frame)
            reply = await comm.receive_json_from(timeout=3)
            assert reply["type"] == "error", (frame["type"], reply)
            assert reply["code"] == "not_found", reply  # not yours reads as does not exist
        await comm.disconnect()
    await visitor.disconnect()


def _hold_by(agent_profile) -> int:
    # Set directly: how the chat came to be held is routing's business, not this matrix's.
    conversation = Conversation.objects.get()
    Conversation.objects.filter(pk=conversation.pk).update(
        agent=agent_profile, status=Conversation.Status.ACTIVE
    )
    return conversation.pk


async def _skip_pending(comm: WebsocketCommunicator) -> None:
    """Read whatever the server already sent (a timed-out receive would cancel the app)."""
    while not await comm.receive_nothing(timeout=0.2):
        await comm.receive_output()


@pytest.mark.django_db(transaction=True)
async def test_a_visitor_cannot_reach_another_visitors_chat(agent):
    first, _ = await visitor_socket()
    await first.send_json_to(
        {"type": "start", "department": "support", "name": "Ann", "message": "my private question"}
    )
    await _skip_pending(first)
    other, other_welcome = await visitor_socket()
    assert other_welcome["conversation"] is None
    # Its own token cannot name someone else's chat: sync and end act only on its own.
    await other.send_json_to({"type": "sync", "last_seq": 0})
    assert (await other.receive_json_from())["code"] == "not_found"
    await other.send_json_to({"type": "end"})
    await _skip_pending(other)
    # A forged token is refused, not mapped to anyone.
    forged, _ = await visitor_socket(hello=False)
    await forged.send_json_to({"type": "hello", "token": "x" * 43})
    assert (await forged.receive_json_from())["code"] == "invalid_token"
    # The first visitor's chat is untouched and its socket never saw the other one.
    await first.send_json_to({"type": "sync", "last_seq": 0})
    history = await first.receive_json_from()
    assert history["type"] == "history" and history["messages"][0]["body"] == "my private question"
    for comm in (first, other, forged):
        await comm.disconnect()


# --- department scope ------------------------------------------------------------------------

# Which department's transcripts each role reads in the back office (support: the supervisor's).
TRANSCRIPTS = {
    AGENT: set(),
    SUPERVISOR: {"support"},
    COMPLIANCE: {"support", "billing"},
    ADMIN: {"support", "billing"},
    ANON: set(),
}


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_transcripts_in_the_back_office_are_scoped_to_departments(
    clients, role, department, other_department
):
    from tests.factories import ConversationFactory

    conversations = {
        "support": ConversationFactory(department=department),
        "billing": ConversationFactory(department=other_department),
    }
    client = clients[role]
    readable = set()
    for slug, conversation in conversations.items():
        url = reverse("admin:chat_conversation_change", args=[conversation.pk])
        if client.get(url).status_code == 200:
            readable.add(slug)
    assert readable == TRANSCRIPTS[role]
    if role in (SUPERVISOR, COMPLIANCE, ADMIN):
        listed = client.get(_changelist_url("chat.conversation")).context["cl"].result_list
        assert {c.department.slug for c in listed} == TRANSCRIPTS[role]
