"""Sockets get in while the process' shared database thread is busy.

`database_sync_to_async` runs every call of a process on one thread. When one of two servers
goes down, all of its sockets come to the other at once; handshakes that queued on that thread
behind each other (and behind whatever else runs there) outlasted daphne's 5 s handshake
timeout, were closed and came again (docs/benchmarks.md, Chaos). A handshake's reads therefore
run on the message threads (chat/dbpool.py): the origin, the session and user
(compliance/socket_session.py), the IP allowlist, the staff grant, the agent's profile and
state, the visitor's hello. Here that thread is held busy while sockets connect: each must get
in as usual, and the held work must still finish afterwards.

PostgreSQL only: the embedded default (SQLite, one writer) has no message threads by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from config.asgi import application
from tests.chat.helpers import ORIGIN, session_cookie_for

pytestmark = pytest.mark.django_db(transaction=True)

HANDSHAKE_SECONDS = 3  # well inside daphne's 5 s; the thread stays held for 30


@pytest.fixture(autouse=True)
def _message_threads():
    if not settings.CHAT_MESSAGE_DB_THREADS:
        pytest.skip("the embedded default has no message threads (CHAT_MESSAGE_DB_THREADS=0)")


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@contextlib.asynccontextmanager
async def shared_thread_busy():
    """Holds the process' shared database thread, as a slow call there would; yields the held
    call, which must still be running while the sockets get in."""
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(30)

    held = asyncio.ensure_future(sync_to_async(hold, thread_sensitive=True)())
    while not started.is_set():
        await asyncio.sleep(0.01)
    try:
        yield held
    finally:
        release.set()
        await held


async def test_an_agent_socket_gets_its_state_while_the_shared_thread_is_busy(agent):
    cookie = await session_cookie_for("alice")
    async with shared_thread_busy() as held:
        comm = WebsocketCommunicator(application, "/ws/agent/", headers=[ORIGIN, (b"cookie", cookie)])
        connected, _ = await comm.connect(timeout=HANDSHAKE_SECONDS)
        assert connected, "the agent's handshake was refused"
        state = await comm.receive_json_from(timeout=HANDSHAKE_SECONDS)
        assert state["type"] == "state"
        assert state["me"]["name"] == "Alice Agent"
        assert not held.done()  # it really got in while the thread was held
        await comm.send_json_to({"type": "ping"})
        assert (await comm.receive_json_from(timeout=HANDSHAKE_SECONDS))["type"] == "pong"
    await comm.disconnect()


async def test_a_stranger_is_still_refused_while_the_shared_thread_is_busy(agent):
    async with shared_thread_busy():
        comm = WebsocketCommunicator(application, "/ws/agent/", headers=[ORIGIN, (b"cookie", b"sessionid=nope")])
        connected, _ = await comm.connect(timeout=HANDSHAKE_SECONDS)  # closed unaccepted: HTTP 403
        assert not connected


async def test_visitors_get_their_welcome_while_the_shared_thread_is_busy(department):
    async with shared_thread_busy() as held:
        first = WebsocketCommunicator(application, "/ws/visitor/", headers=[ORIGIN])
        connected, _ = await first.connect(timeout=HANDSHAKE_SECONDS)
        assert connected
        await first.send_json_to({"type": "hello", "token": None, "last_seq": 0})
        welcome = await first.receive_json_from(timeout=HANDSHAKE_SECONDS)
        assert welcome["type"] == "welcome" and welcome["token"]

        # The same visitor coming back with its token, as after a server went down.
        again = WebsocketCommunicator(application, "/ws/visitor/", headers=[ORIGIN])
        connected, _ = await again.connect(timeout=HANDSHAKE_SECONDS)
        assert connected
        await again.send_json_to({"type": "hello", "token": welcome["token"], "last_seq": 0})
        back = await again.receive_json_from(timeout=HANDSHAKE_SECONDS)
        assert back["type"] == "welcome" and back["token"] is None
        assert [d["slug"] for d in back["departments"]] == [d["slug"] for d in welcome["departments"]]
        assert not held.done()
    await first.disconnect()
    await again.disconnect()
