"""The shared cast and the socket helpers of the canary tests (embedded default, in-process ASGI)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.apps import apps
from django.utils import timezone

from chat.models import AgentProfile
from compliance import roles
from config.asgi import application
from tests.auth import staff_session_cookie
from tests.canary.harness import Recorder
from tests.factories import AgentFactory, DepartmentFactory, UserFactory, give_role

ORIGIN = (b"origin", b"http://127.0.0.1")


def restore_role_permissions() -> None:
    """Transactional tests flush the database, and with it the roles' permissions that data
    migrations granted; put back every migration's PERMISSIONS (role -> "app.codename") so
    each role's walk sees what that role really sees, whatever test ran before."""
    from django.contrib.auth.models import Group, Permission

    for app_config in apps.get_app_configs():
        try:
            package = importlib.import_module(f"{app_config.name}.migrations")
        except ModuleNotFoundError:
            continue
        for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            granted = getattr(module, "PERMISSIONS", None)
            if not isinstance(granted, dict):
                continue
            for role, names in granted.items():
                if role not in roles.ROLES:
                    continue
                group, _ = Group.objects.get_or_create(name=role)
                for name in names:
                    app_label, codename = name.split(".", 1)
                    group.permissions.add(
                        *Permission.objects.filter(
                            content_type__app_label=app_label, codename=codename
                        )
                    )


def make_cast() -> dict[str, Any]:
    """Two departments; Alice and Bob in support, Carl in billing, Dora in both; Sam a
    superuser supervisor with no agent profile, Sue a supervisor of support by role."""
    restore_role_permissions()
    support = DepartmentFactory(name="Patient support", slug="support")
    billing = DepartmentFactory(name="Billing", slug="billing")

    def agent(username: str, name: str, departments: list[Any]) -> AgentProfile:
        user = give_role(UserFactory(username=username), roles.AGENT)
        return AgentFactory(user=user, display_name=name, departments=departments)

    cast = {
        "support": support,
        "billing": billing,
        "alice": agent("alice", "Alice Agent", [support]),
        "bob": agent("bob", "Bob Agent", [support]),
        "carl": agent("carl", "Carl Agent", [billing]),
        "dora": agent("dora", "Dora Agent", [support, billing]),
        "sam": give_role(UserFactory(username="sam", is_superuser=True), roles.SUPERVISOR),
        "sue": give_role(UserFactory(username="sue"), roles.SUPERVISOR),
        "carol": give_role(UserFactory(username="carol"), roles.COMPLIANCE_OFFICER),
        "ada": give_role(UserFactory(username="ada"), roles.ADMINISTRATOR),
    }
    AgentFactory(user=cast["sue"], display_name="Sue Supervisor", departments=[support])
    return cast


def favour(*preferred: AgentProfile, over: list[AgentProfile]) -> None:
    """Routing takes the agent assigned longest ago: make the others look recently busy."""
    AgentProfile.objects.filter(pk__in=[a.pk for a in over]).update(last_assigned_at=timezone.now())
    AgentProfile.objects.filter(pk__in=[a.pk for a in preferred]).update(last_assigned_at=None)


async def _cookie(username: str) -> bytes:
    return (await database_sync_to_async(staff_session_cookie)(username)).encode()


async def agent_socket(username: str, *, online: bool = True) -> Recorder:
    comm = WebsocketCommunicator(
        application, "/ws/agent/", headers=[ORIGIN, (b"cookie", await _cookie(username))]
    )
    connected, _ = await comm.connect(timeout=10)
    assert connected, f"agent socket for {username} refused"
    rec = Recorder(comm)
    await rec.until(lambda f: f["type"] == "state")
    if online:
        await rec.send({"type": "presence", "status": "online"})
        await rec.until(lambda f: f["type"] == "presence" and f["status"] == "online")
    return rec


async def supervisor_socket(username: str) -> Recorder:
    comm = WebsocketCommunicator(
        application, "/ws/supervisor/", headers=[ORIGIN, (b"cookie", await _cookie(username))]
    )
    connected, _ = await comm.connect(timeout=10)
    assert connected, f"supervisor socket for {username} refused"
    rec = Recorder(comm)
    await rec.until(lambda f: f["type"] == "live")
    return rec


async def visitor_socket(
    *, token: str | None = None, last_seq: int = 0, page_url: str | None = None
) -> Recorder:
    comm = WebsocketCommunicator(application, "/ws/visitor/", headers=[ORIGIN])
    connected, _ = await comm.connect(timeout=10)
    assert connected
    rec = Recorder(comm)
    hello: dict[str, Any] = {"type": "hello", "token": token, "last_seq": last_seq}
    if page_url is not None:
        hello["page_url"] = page_url
    await rec.send(hello)
    await rec.until(lambda f: f["type"] in ("welcome", "error"))
    return rec


def welcome_token(rec: Recorder) -> str:
    return next(f["token"] for f in rec.frames if f["type"] == "welcome")


async def accept_offer(agent: Recorder) -> int:
    offer = await agent.until(lambda f: f["type"] == "offer")
    await agent.send({"type": "accept", "conversation_id": offer["conversation_id"]})
    await agent.until(
        lambda f: f["type"] == "history" and f["conversation_id"] == offer["conversation_id"]
    )
    return offer["conversation_id"]


async def say(
    sender: Recorder, conversation_id: int | None, body: str, *, visibility: str | None = None
) -> None:
    """Send a message and wait for its ack (so it is stored and broadcast before the next step)."""
    client_id = f"c-{len(sender.frames)}-{abs(hash(body)) % 10**8}"
    frame: dict[str, Any] = {"type": "message", "body": body, "client_id": client_id}
    if conversation_id is not None:
        frame["conversation_id"] = conversation_id
    if visibility:
        frame["visibility"] = visibility
    await sender.send(frame)
    ack = await sender.until(
        lambda f: client_id in (f.get("client_id"), f.get("ref")) and f["type"] in ("ack", "error")
    )
    assert ack["type"] == "ack", ack
