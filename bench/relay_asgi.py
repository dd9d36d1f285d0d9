"""The baseline of the load benchmark: a bare Channels pair-relay, no database, no auth.

Two sockets of one pair connect to /ws/relay/<pair>/<side>/ (side `a` or `b`); every text frame one
side sends is passed through the channel layer to the other side unchanged. Same daphne, same
settings and the same Redis as the project, with channels-redis' stock pub/sub layer (bench/load.py
sets it: the project's pipelined layer is part of what is measured), so the ratio of the project's
figures to this one says what the chat itself costs on any machine.

Served by `bench/load.py` as `bench.relay_asgi:application`.
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import re_path


class RelayConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        pair, side = kwargs["pair"], kwargs["side"]
        self.own = f"relay.{pair}.{side}"
        self.other = f"relay.{pair}.{'b' if side == 'a' else 'a'}"
        await self.channel_layer.group_add(self.own, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.own, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is not None:
            await self.channel_layer.group_send(self.other, {"type": "relay", "text": text_data})

    async def relay(self, event: dict) -> None:
        await self.send(text_data=event["text"])


async def healthz(scope, receive, send) -> None:
    """200 for /healthz, so the test server helpers can wait for it like for the project."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            pass
        return
    status = 200 if scope["path"] == "/healthz" else 404
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok" if status == 200 else b""})


application = ProtocolTypeRouter(
    {
        "http": healthz,
        "websocket": URLRouter([re_path(r"^ws/relay/(?P<pair>\d+)/(?P<side>[ab])/$", RelayConsumer.as_asgi())]),
    }
)
