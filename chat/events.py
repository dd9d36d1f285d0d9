"""The one way real-time events leave a service: sent to channel-layer groups after commit.

The layer may drop an event (full channel, expiry, a Redis restart); that is acceptable because
every event a client needs is also in the database and clients resync by sequence number.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from chat.errors import outage_of

log = logging.getLogger(__name__)


def visitor_group(conversation_id: int) -> str:
    """Visitor sockets of one conversation: only public events are ever sent here."""
    return f"conv.{conversation_id}.v"


def staff_group(conversation_id: int) -> str:
    """Staff sockets following one conversation (holder, and later supervisors sitting in)."""
    return f"conv.{conversation_id}.s"


def supervision_group(conversation_id: int) -> str:
    """Supervisors sitting in on one conversation: the agent's typing (staff sockets get it not)."""
    return f"conv.{conversation_id}.sup"


def agent_group(user_id: int) -> str:
    return f"agent.{user_id}"


def department_group(department_id: int) -> str:
    """Staff of a department: queue snapshots."""
    return f"dept.{department_id}"


def live_group(department_id: int) -> str:
    """Supervisors' live views of one department. Only supervisors of that department join it
    (chat/supervision.py), and each event carries no chat data: the socket re-reads the chat
    under the supervisor's access check before it sends anything on."""
    return f"live.{department_id}"


def visitor_private_group(visitor_id: int) -> str:
    """Every tab of one visitor, whatever conversation they hold."""
    return f"visitor.{visitor_id}"


def send_event_on_commit(group: str, frame: dict[str, Any], *, handler: str = "chat.frame", **extra: Any) -> None:
    """Queue `frame` for `group` once the current transaction commits (at once outside one)."""
    send_on_commit(group, event(frame, handler=handler, **extra))


def event(frame: dict[str, Any], *, handler: str = "chat.frame", **extra: Any) -> dict[str, Any]:
    """The channel-layer event that carries `frame` to a group's sockets."""
    return {"type": handler, "frame": frame, **extra}


def send_on_commit(group: str, event: dict[str, Any]) -> None:
    transaction.on_commit(lambda: _send(group, event))


def send_live_change_on_commit(conversation_id: int, *department_ids: int | None) -> None:
    """A chat was queued, offered, accepted, transferred, taken over or ended: the live views of
    its departments (before and after a transfer) look it up again once this commits."""
    for department_id in dict.fromkeys(d for d in department_ids if d is not None):
        send_event_on_commit(
            live_group(department_id),
            {"conversation_id": conversation_id, "department_id": department_id},
            handler="chat.live",
            conversation_id=conversation_id,
            department_id=department_id,
        )


# The events of one call on the message path (chat.dbpool), gathered as its transactions commit
# and sent by the caller on the event loop once the call returns: a hop from the database thread
# to the loop and back for every event cost more CPU than the send itself (docs/benchmarks.md).
# Only on-commit callbacks append here, so an event of a rolled-back transaction is never sent.
_collected: ContextVar[list[tuple[str, dict[str, Any]]] | None] = ContextVar("chat_events_collected", default=None)


def _send(group: str, event: dict[str, Any]) -> None:
    collected = _collected.get()
    if collected is not None:
        collected.append((group, event))
        return
    if get_channel_layer() is None:
        return
    try:
        async_to_sync(send_now)(group, event)
    except Exception:  # send_now logs the layer's failures; this is the bridge's own
        log.exception("channel layer send to %s failed; clients will resync from the database", group)


def call_collecting(collected: list[tuple[str, dict[str, Any]]], fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run `fn` (in a database thread) with its committed events appended to `collected`
    instead of sent; the caller sends them with `send_collected`, also when `fn` raised (an
    earlier transaction of the call may have committed)."""
    token = _collected.set(collected)
    try:
        return fn(*args, **kwargs)
    finally:
        _collected.reset(token)


async def send_collected(collected: list[tuple[str, dict[str, Any]]]) -> None:
    """Send events (gathered by `call_collecting`, or a message's), in order, on the event loop.
    Once called, they go out even if the caller is cancelled meanwhile (its socket closed): the
    other side's copy of a message must not depend on the sender staying."""
    layer = get_channel_layer()
    if layer is None or not collected:
        return
    send_many = getattr(layer, "group_send_many", None)  # chat/redis_layer.py: queued at once
    if send_many is None:
        await asyncio.shield(_send_each(collected))
        return
    try:
        async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
            await send_many(collected)
    except Exception as exc:  # noqa: BLE001 - logged; as in send_now, a lost event is recovered by resync
        _log_send_failure(", ".join(group for group, _ in collected), exc)


async def _send_each(collected: list[tuple[str, dict[str, Any]]]) -> None:
    for group, event in collected:
        await send_now(group, event)


async def send_now(group: str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await _bounded_send(layer, group, event)
    except Exception as exc:  # noqa: BLE001 - logged; a lost event is recovered by resync, a raised one would undo nothing
        _log_send_failure(group, exc)


def _log_send_failure(groups: str, exc: Exception) -> None:
    if outage_of(exc) is None:
        log.exception("channel layer send to %s failed; clients will resync from the database", groups)
    else:  # one line each: in an outage every event fails alike
        log.warning("channel layer send to %s failed (%s); clients will resync from the database", groups, exc)


SEND_TIMEOUT_SECONDS = 2.0


async def _bounded_send(layer: Any, group: str, event: dict[str, Any]) -> None:
    # A Redis that hangs must not hold the sender: from a database thread (on commit) that is a
    # thread every socket of the process needs (found by tests/realmode/test_chaos.py at 100
    # sockets); on the message path it is the sender's ack. A send given up on is a lost live
    # frame, which clients recover by resync.
    # asyncio.timeout, not wait_for: no task of its own per event.
    async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
        await layer.group_send(group, event)
