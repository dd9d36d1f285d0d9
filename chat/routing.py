from django.urls import path

from chat.consumers import AgentConsumer
from chat.supervision import SupervisorConsumer
from chat.widget_consumer import WidgetVisitorConsumer

# Visitor sockets are identified by their token, never by a session (config/asgi.py routes them
# without the session and user middleware); only this route is reachable that way.
visitor_urlpatterns = [
    path("ws/visitor/", WidgetVisitorConsumer.as_asgi()),
]

staff_urlpatterns = [
    path("ws/agent/", AgentConsumer.as_asgi()),
    path("ws/supervisor/", SupervisorConsumer.as_asgi()),
]

websocket_urlpatterns = visitor_urlpatterns + staff_urlpatterns
