"""Refuses WebSocket handshakes from origins that are not allowed.

Staff sockets accept only this site's own hosts (ALLOWED_HOSTS). Visitor sockets also accept
the sites that embed the widget (CHAT_ALLOWED_ORIGINS). A missing Origin is refused: browsers
always send one, so its absence means a script trying to look like one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings

VISITOR_PATH_PREFIX = "/ws/visitor/"


class ChatOriginValidator(OriginValidator):
    def __init__(self, application: Any) -> None:
        super().__init__(application, allowed_origins=[])

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        parsed = None
        for name, value in scope.get("headers", []):
            if name == b"origin":
                try:
                    parsed = urlparse(value.decode("latin1"))
                except UnicodeDecodeError:
                    parsed = None
        self.allowed_origins = allowed_origins(visitor=scope.get("path", "").startswith(VISITOR_PATH_PREFIX))
        if parsed is not None and self.validate_origin(parsed):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)


def allowed_origins(*, visitor: bool) -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts + list(settings.CHAT_ALLOWED_ORIGINS) if visitor else hosts
