"""ASGI middleware: staff sockets only from networks the staff member may work from.

Sits inside the staff sockets' session and user middleware (it needs scope["user"];
compliance.socket_session) and refuses the handshake (403) before the consumer runs. Visitor
sockets are not staff and pass untouched.
"""

from __future__ import annotations

from typing import Any

from channels.security.websocket import WebsocketDenier

from chat.dbpool import message_sync_to_async  # a handshake's reads: see AgentConsumer._start
from compliance import access, audit
from compliance.models import AuditEntry

VISITOR_PATH_PREFIX = "/ws/visitor/"


class StaffSocketIPGuard:
    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        staff = scope["type"] == "websocket" and not scope.get("path", "").startswith(
            VISITOR_PATH_PREFIX
        )
        if staff and not await message_sync_to_async(_allowed)(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def _allowed(scope: dict[str, Any]) -> bool:
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return True  # the consumer refuses anonymous staff sockets itself
    ip = access.client_ip_of_scope(scope)
    refused_by = access.refusal_for(user=user, ip=ip)
    if refused_by is None:
        return True
    audit.record(
        action="access.ip_refused",
        actor=user,
        role=audit.role_of(user),
        source_ip=ip,
        target=f"socket:{scope.get('path', '')}"[:255],
        outcome=AuditEntry.Outcome.DENIED,
        details={"list": refused_by},
    )
    return False
