import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django must be set up before the consumers (and their models) are imported.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter

from chat.origins import ChatOriginValidator
from chat.routing import websocket_urlpatterns
from compliance.socket_access import StaffSocketIPGuard
from compliance.socket_auth import StaffSocketGuard
from reporting import scheduler

# Embedded default: metric e-mails and today's figures without a beat process (README, Reporting).
scheduler.start_with_server()

_router = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Outermost first: the origin, the session, the network allowlist, then two-factor and
        # the session's liveness for staff sockets.
        "websocket": ChatOriginValidator(
            AuthMiddlewareStack(StaffSocketIPGuard(StaffSocketGuard(URLRouter(websocket_urlpatterns))))
        ),
    }
)


async def application(scope, receive, send):
    # Servers other than daphne: the scheduler starts with the first request instead.
    scheduler.start()
    return await _router(scope, receive, send)
