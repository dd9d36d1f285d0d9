"""Refuses WebSocket handshakes from origins that are not allowed.

Staff sockets accept only this site's own hosts (ALLOWED_HOSTS). Visitor sockets also accept
the sites that embed the widget: the back office's AllowedOrigin rows (read per handshake, so a
change applies at once) and CHAT_ALLOWED_ORIGINS. A missing Origin is refused: browsers always
send one, so its absence means a script trying to look like one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings

from chat.dbpool import message_sync_to_async

VISITOR_PATH_PREFIX = "/ws/visitor/"


class ChatOriginValidator(OriginValidator):
    def __init__(self, application: Any) -> None:
        super().__init__(application, allowed_origins=[])

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = dict(scope.get("headers", []))
        try:
            raw = headers.get(b"origin")
            parsed = urlparse(raw.decode("latin1")) if raw is not None else None
        except (UnicodeDecodeError, ValueError):
            parsed = None
        visitor = scope.get("path", "").startswith(VISITOR_PATH_PREFIX)
        # On the message threads: a handshake's reads (see AgentConsumer._start).
        extra = await message_sync_to_async(configured_origins)() if visitor and parsed is not None else []
        if parsed is not None and self._allowed(parsed, visitor=visitor, host=headers.get(b"host"), extra=extra):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)

    def _allowed(self, parsed: Any, *, visitor: bool, host: bytes | None, extra: list[str] | None = None) -> bool:
        patterns = allowed_origins(visitor=visitor) + (extra or [])
        if not any(pattern == "*" or self.match_allowed_origin(parsed, pattern) for pattern in patterns):
            return False
        if not visitor and host is not None:
            # Staff pages are served by this site itself: the origin must be exactly the host
            # (with its port) the socket was opened to, not some other service on that machine.
            return parsed.netloc.lower() == host.decode("latin1").lower()
        return True


def allowed_origins(*, visitor: bool) -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts + list(settings.CHAT_ALLOWED_ORIGINS) if visitor else hosts


def configured_origins() -> list[str]:
    """The embedding sites allowed in the back office (Widget: allowed origins)."""
    from chat.models import AllowedOrigin

    return list(AllowedOrigin.objects.filter(enabled=True).values_list("origin", flat=True))


def origin_allowed_for_visitor(origin: str | None) -> bool:
    """The same decision as the handshake, for the widget's configuration request (sync code)."""
    if not origin:
        return False
    try:
        parsed = urlparse(origin)
    except ValueError:
        return False
    if not parsed.hostname:
        return False
    validator = OriginValidator(None, allowed_origins=[])
    patterns = allowed_origins(visitor=True) + configured_origins()
    return any(p == "*" or validator.match_allowed_origin(parsed, p) for p in patterns)
