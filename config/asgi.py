import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django must be set up before the consumers (and their models) are imported.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat.origins import ChatOriginValidator  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from compliance.socket_access import StaffSocketIPGuard  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": ChatOriginValidator(AuthMiddlewareStack(StaffSocketIPGuard(URLRouter(websocket_urlpatterns)))),
    }
)
