import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django must be set up before the consumers (and their models) are imported.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter

from chat.origins import VISITOR_PATH_PREFIX, ChatOriginValidator
from chat.routing import staff_urlpatterns, visitor_urlpatterns
from compliance.socket_access import StaffSocketIPGuard
from compliance.socket_auth import StaffSocketGuard
from compliance.socket_session import staff_socket_auth_stack
from config import server_gc
from reporting import scheduler

server_gc.tune()

# Embedded default: metric e-mails and today's figures without a beat process (README, Reporting).
scheduler.start_with_server()

# Outermost first: the session and user (Channels' lookup, on the message threads), the network
# allowlist, then two-factor and the session's liveness for staff sockets.
_staff_sockets = staff_socket_auth_stack(StaffSocketIPGuard(StaffSocketGuard(URLRouter(staff_urlpatterns))))
_visitor_sockets = URLRouter(visitor_urlpatterns)


async def _sockets(scope, receive, send):
    # A visitor socket never uses a session or a user: skipping their middleware saves a
    # handshake two hops to the process' one database thread. After a server went down all of
    # its visitors come to another one at once, and those hops queued past daphne's 5 s
    # handshake timeout (tests/realmode/test_chaos.py on a busy machine).
    if scope.get("path", "").startswith(VISITOR_PATH_PREFIX):
        return await _visitor_sockets(scope, receive, send)
    return await _staff_sockets(scope, receive, send)


_router = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": ChatOriginValidator(_sockets),  # the origin first, for every socket
    }
)


# Last: everything loaded so far lives as long as the process (config/server_gc.py).
server_gc.freeze_startup()


async def application(scope, receive, send):
    # Servers other than daphne: the scheduler starts with the first request instead.
    scheduler.start()
    return await _router(scope, receive, send)
