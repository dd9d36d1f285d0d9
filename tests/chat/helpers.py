"""Drive the real ASGI application over WebSocket, as the pages and third parties do."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from tests.auth import staff_session_cookie

ORIGIN = (b"origin", b"http://127.0.0.1")


async def visitor_socket(*, token: str | None = None, last_seq: int = 0, hello: bool = True):
    comm = WebsocketCommunicator(application, "/ws/visitor/", headers=[ORIGIN])
    connected, _ = await comm.connect()
    assert connected
    welcome = None
    if hello:
        await comm.send_json_to({"type": "hello", "token": token, "last_seq": last_seq})
        welcome = await comm.receive_json_from()
        assert welcome["type"] == "welcome", welcome
    return comm, welcome


async def session_cookie_for(username: str) -> bytes:
    value = await database_sync_to_async(staff_session_cookie)(username)
    return value.encode()


async def agent_socket(username: str):
    cookie = await session_cookie_for(username)
    comm = WebsocketCommunicator(application, "/ws/agent/", headers=[ORIGIN, (b"cookie", cookie)])
    connected, _ = await comm.connect()
    assert connected, f"agent socket for {username} refused"
    state = await comm.receive_json_from()
    assert state["type"] == "state"
    return comm, state


async def receive_until(comm: WebsocketCommunicator, predicate, *, timeout: float = 3.0) -> dict[str, Any]:
    """Frames until one matches; fails with the frames seen so a wrong frame is easy to read."""
    seen = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise AssertionError(f"no matching frame; saw {json.dumps(seen)[:2000]}")
        try:
            frame = await comm.receive_json_from(timeout=remaining)
        except TimeoutError:
            raise AssertionError(f"no matching frame; saw {json.dumps(seen)[:2000]}") from None
        seen.append(frame)
        if predicate(frame):
            return frame


async def drain(comm: WebsocketCommunicator, *, timeout: float = 0.3) -> list[dict[str, Any]]:
    frames = []
    while True:
        try:
            frames.append(await comm.receive_json_from(timeout=timeout))
        except TimeoutError:
            return frames


async def pending(comm: WebsocketCommunicator, *, quiet: float = 0.2) -> list[dict[str, Any]]:
    """Every frame waiting for the client, without ending the socket.

    drain() times out on receive, and a timed-out receive cancels the application instance; this
    one only reads what is there.
    """
    frames = []
    while not await comm.receive_nothing(timeout=quiet):
        frames.append(await comm.receive_json_from())
    return frames


async def open_chat(
    agent_username: str = "alice",
) -> tuple[WebsocketCommunicator, WebsocketCommunicator, int, str]:
    """A visitor and an agent in an accepted chat; both sockets drained of the setup frames."""
    agent_comm, _ = await agent_socket(agent_username)
    await agent_comm.send_json_to({"type": "presence", "status": "online"})
    await receive_until(agent_comm, lambda f: f["type"] == "presence" and f["status"] == "online")
    visitor, welcome = await visitor_socket()
    await visitor.send_json_to(
        {"type": "start", "department": "support", "message": "first", "client_id": "v-0"}
    )
    offer = await receive_until(agent_comm, lambda f: f["type"] == "offer")
    await agent_comm.send_json_to({"type": "accept", "conversation_id": offer["conversation_id"]})
    await receive_until(agent_comm, lambda f: f["type"] == "history")
    await receive_until(visitor, lambda f: f["type"] == "conversation" and f["status"] == "active")
    await pending(visitor)
    await pending(agent_comm)
    return visitor, agent_comm, offer["conversation_id"], welcome["token"]
