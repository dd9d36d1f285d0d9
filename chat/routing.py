from django.urls import path

from chat.consumers import AgentConsumer, VisitorConsumer
from chat.supervision import SupervisorConsumer

websocket_urlpatterns = [
    path("ws/visitor/", VisitorConsumer.as_asgi()),
    path("ws/agent/", AgentConsumer.as_asgi()),
    path("ws/supervisor/", SupervisorConsumer.as_asgi()),
]
