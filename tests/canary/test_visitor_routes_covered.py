"""Every socket route a visitor (no login) can open is one the canary scenario drives.

A new visitor-facing socket route fails this test until the canary scenario records its frames
too; staff routes must refuse an anonymous handshake. (Pages need no such list: the canary walk
reads every route of the URL conf.)
"""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from chat.routing import websocket_urlpatterns
from config.asgi import application
from tests.canary.harness import _clean

pytestmark = pytest.mark.django_db(transaction=True)

# Routes whose frames the canary tests record for every visitor (tests/canary/scenario.py).
DRIVEN_BY_THE_CANARIES = {"/ws/visitor/"}


async def test_every_socket_a_visitor_can_open_is_searched_by_the_canaries():
    open_to_anyone = set()
    for pattern in websocket_urlpatterns:
        path = _clean(str(pattern.pattern))
        comm = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://127.0.0.1")])
        connected, _ = await comm.connect(timeout=10)
        if connected:
            open_to_anyone.add(path)
            await comm.disconnect()
    assert "/ws/visitor/" in open_to_anyone
    assert open_to_anyone <= DRIVEN_BY_THE_CANARIES, (
        f"{open_to_anyone - DRIVEN_BY_THE_CANARIES} accept visitors: record their frames in the "
        "canary scenario and add them here"
    )
