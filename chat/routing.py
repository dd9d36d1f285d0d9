from django.urls import path

from chat.consumers import AgentConsumer
from chat.supervision import SupervisorConsumer
from chat.widget_consumer import WidgetVisitorConsumer

websocket_urlpatterns = [
    path("ws/visitor/", WidgetVisitorConsumer.as_asgi()),
    path("ws/agent/", AgentConsumer.as_asgi()),
    path("ws/supervisor/", SupervisorConsumer.as_asgi()),
]
