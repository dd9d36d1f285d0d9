"""The session and user of a staff socket's handshake, read on the message threads.

Channels' AuthMiddlewareStack reads the session and the user through `database_sync_to_async`,
on the one thread a process shares for all such calls. After one of two servers went down, all
of its staff came to the other at once, and their handshakes queued there behind each other
past daphne's handshake timeout (tests/realmode/test_chaos.py on a busy machine); each one thrown
away was redone, and some agents got no socket back for 20 s. The same reads, by the same
Channels function, run here on the message threads (chat.dbpool), as the rest of a handshake's
reads do. In the embedded default (SQLite) that is the shared thread again.
"""

from __future__ import annotations

from typing import Any

from channels import auth
from channels.sessions import CookieMiddleware, SessionMiddleware

from chat.dbpool import message_sync_to_async

# Channels' own lookup (session, backend, session hash), without its thread-sensitive wrapper.
_get_user = message_sync_to_async(auth.get_user.func)


class StaffSocketAuthMiddleware(auth.AuthMiddleware):
    async def resolve_scope(self, scope: dict[str, Any]) -> None:
        scope["user"]._wrapped = await _get_user(scope)


def staff_socket_auth_stack(inner: Any) -> Any:
    """Channels' AuthMiddlewareStack, with the user read on the message threads."""
    return CookieMiddleware(SessionMiddleware(StaffSocketAuthMiddleware(inner)))
