"""Staff sockets accept only a live, OTP-verified session of their own user, and close when
that stops being true (compliance/socket_auth.py). Driven through the real ASGI application."""

from __future__ import annotations

import asyncio
import time
from importlib import import_module

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth.models import Group

from compliance import roles, two_factor
from compliance.models import AuditEntry
from compliance.socket_auth import CLOSE_SESSION_ENDED
from config.asgi import application
from tests.auth import session_key_for, staff_session_cookie, totp_device
from tests.chat.helpers import ORIGIN

pytestmark = pytest.mark.django_db(transaction=True)

# Every staff socket on this branch. A new staff socket adds its path here.
STAFF_SOCKETS = ["/ws/agent/"]


def _session_cookie(*, user, device) -> str:
    return session_key_for(user, device=device)


async def _open(path: str, session_key: str) -> tuple[bool, WebsocketCommunicator]:
    comm = WebsocketCommunicator(
        application, path, headers=[ORIGIN, (b"cookie", f"sessionid={session_key}".encode())]
    )
    connected, _ = await comm.connect()
    return connected, comm


async def _closed_with(comm: WebsocketCommunicator, *, within: float) -> int | None:
    """The close code the server sent within `within` seconds, or None if it stayed open."""
    # receive_nothing, not a receive_output timeout: a timed-out receive_output cancels the app.
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await comm.receive_nothing(timeout=0.05):
            continue
        output = await comm.receive_output(timeout=1)
        if output["type"] == "websocket.close":
            return output.get("code")
    return None


@pytest.mark.parametrize("path", STAFF_SOCKETS)
async def test_a_password_only_session_is_refused_on_every_staff_socket(agent, path):
    key = await database_sync_to_async(_session_cookie)(user=agent.user, device=None)
    connected, _ = await _open(path, key)
    assert connected is False
    # The same user with a verified session is let in: the refusal was the missing factor.
    cookie = await database_sync_to_async(staff_session_cookie)(agent.user)
    connected, comm = await _open(path, cookie.split("=", 1)[1])
    assert connected is True
    await comm.disconnect()


@pytest.mark.parametrize("path", STAFF_SOCKETS)
async def test_a_session_verified_by_another_users_device_is_refused(agent, second_agent, path):
    other = await database_sync_to_async(totp_device)(second_agent.user)
    key = await database_sync_to_async(_session_cookie)(user=agent.user, device=other)
    assert (await _open(path, key))[0] is False


@pytest.mark.parametrize("path", STAFF_SOCKETS)
async def test_an_idle_session_is_refused(agent, path):
    cookie = await database_sync_to_async(staff_session_cookie)(agent.user)
    key = cookie.split("=", 1)[1]

    def age() -> None:
        store = import_module(django_settings.SESSION_ENGINE).SessionStore(key)
        two_factor.note_activity(
            store, now=time.time() - django_settings.STAFF_IDLE_TIMEOUT_SECONDS - 1
        )
        store.save()

    await database_sync_to_async(age)()
    assert (await _open(path, key))[0] is False


# --- open sockets that outlive what let them in ------------------------------------------


def _logout(key: str, user) -> None:
    import_module(django_settings.SESSION_ENGINE).SessionStore(key).delete()


def _change_password(key: str, user) -> None:
    user.set_password("a-new-password-elsewhere")
    user.save(update_fields=["password"])


def _disable(key: str, user) -> None:
    user.is_active = False
    user.save(update_fields=["is_active"])


def _remove_role(key: str, user) -> None:
    user.groups.remove(Group.objects.get(name=roles.AGENT))


def _remove_device(key: str, user) -> None:
    user.totpdevice_set.all().delete()


def _go_idle(key: str, user) -> None:
    store = import_module(django_settings.SESSION_ENGINE).SessionStore(key)
    two_factor.note_activity(
        store, now=time.time() - django_settings.STAFF_IDLE_TIMEOUT_SECONDS - 1
    )
    store.save()


@pytest.mark.parametrize("path", STAFF_SOCKETS)
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_logout, "session_ended"),
        (_change_password, "session_ended"),
        (_disable, "account_disabled"),
        (_remove_role, "role_removed"),
        (_remove_device, "device_removed"),
        (_go_idle, "idle"),
    ],
    ids=[
        "logout",
        "password-changed-elsewhere",
        "account-disabled",
        "role-removed",
        "device-removed",
        "idle",
    ],
)
async def test_an_open_staff_socket_closes_when_its_session_stops_being_valid(
    agent, settings, path, change, reason
):
    settings.STAFF_SOCKET_RECHECK_SECONDS = 0.3
    cookie = await database_sync_to_async(staff_session_cookie)(agent.user)
    key = cookie.split("=", 1)[1]
    connected, comm = await _open(path, key)
    assert connected
    assert await _closed_with(comm, within=1.0) is None  # a valid session stays open
    await database_sync_to_async(change)(key, agent.user)
    assert await _closed_with(comm, within=3.0) == CLOSE_SESSION_ENDED
    entry = await database_sync_to_async(
        lambda: AuditEntry.objects.filter(action="socket.closed").order_by("-id").first()
    )()
    assert entry.details == {"reason": reason} and entry.target == "user:alice"


def _with_plain_receive(app):
    """The application behind a server whose `receive` is not an asyncio.Queue's `get`."""

    async def wrapped(scope, receive, send):
        async def plain_receive():
            return await receive()

        return await app(scope, plain_receive, send)

    return wrapped


@pytest.mark.parametrize("server", ["queue", "plain"])
async def test_the_close_also_ends_the_consumer_on_either_kind_of_server(agent, settings, server):
    # The guard ends the consumer's wait for the next frame itself: through daphne's queue where
    # the server has one, through a relay of its own elsewhere. Either way the clean-up runs.
    settings.STAFF_SOCKET_RECHECK_SECONDS = 0.3
    cookie = await database_sync_to_async(staff_session_cookie)(agent.user)
    key = cookie.split("=", 1)[1]
    app = application if server == "queue" else _with_plain_receive(application)
    comm = WebsocketCommunicator(app, "/ws/agent/", headers=[ORIGIN, (b"cookie", cookie.encode())])
    assert (await comm.connect())[0]
    await comm.send_json_to({"type": "presence", "status": "online"})
    assert await _closed_with(comm, within=0.8) is None
    await database_sync_to_async(_logout)(key, agent.user)
    assert await _closed_with(comm, within=3.0) == CLOSE_SESSION_ENDED
    await asyncio.wait_for(asyncio.shield(comm.future), timeout=3.0)  # the consumer has returned
    assert comm.future.exception() is None


async def test_pings_are_not_activity_but_chat_frames_are(agent, settings):
    settings.STAFF_SOCKET_RECHECK_SECONDS = 0.3
    settings.STAFF_IDLE_TIMEOUT_SECONDS = 2
    busy_cookie = await database_sync_to_async(staff_session_cookie)(agent.user)
    idle_cookie = await database_sync_to_async(staff_session_cookie)(agent.user)
    _, busy = await _open("/ws/agent/", busy_cookie.split("=", 1)[1])
    _, pinging = await _open("/ws/agent/", idle_cookie.split("=", 1)[1])
    closed_at = None
    started = time.monotonic()
    while time.monotonic() - started < 3.5:
        await pinging.send_json_to({"type": "ping"})
        # A real frame (a presence change), refused or not, is the agent at work.
        await busy.send_json_to({"type": "sync", "conversation_id": 999999, "last_seq": 0})
        code = await _closed_with(pinging, within=0.25)
        if code is not None:
            closed_at = time.monotonic() - started
            assert code == CLOSE_SESSION_ENDED
            break
    assert closed_at is not None and closed_at < 3.5, "pings kept an idle session alive"
    # Meanwhile the busy socket kept its session alive past the 2 s idle limit.
    while time.monotonic() - started < 3.0:
        await busy.send_json_to({"type": "sync", "conversation_id": 999999, "last_seq": 0})
        await asyncio.sleep(0.25)
    assert await _closed_with(busy, within=0.5) is None
    await busy.disconnect()
