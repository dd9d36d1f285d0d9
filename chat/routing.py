from django.urls import path

from chat.consumers import AgentConsumer, VisitorConsumer

websocket_urlpatterns = [
    path("ws/visitor/", VisitorConsumer.as_asgi()),
    path("ws/agent/", AgentConsumer.as_asgi()),
]
