"""Staff sockets accept only the exact origin (scheme, host and port) they were opened to."""

import pytest
from channels.testing import WebsocketCommunicator

from config.asgi import application
from tests.chat.helpers import session_cookie_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [(b"http://127.0.0.1:8000", True), (b"http://127.0.0.1:9999", False), (b"http://localhost:8000", False)],
)
async def test_staff_socket_origin_must_match_host_and_port(agent, origin, accepted):
    cookie = await session_cookie_for("alice")
    comm = WebsocketCommunicator(
        application,
        "/ws/agent/",
        headers=[(b"host", b"127.0.0.1:8000"), (b"origin", origin), (b"cookie", cookie)],
    )
    connected, _ = await comm.connect()
    assert connected is accepted
    await comm.disconnect()


async def test_visitor_socket_from_an_embedding_site_is_allowed_when_configured(settings):
    settings.CHAT_ALLOWED_ORIGINS = ["https://shop.example"]
    comm = WebsocketCommunicator(
        application, "/ws/visitor/", headers=[(b"host", b"chat.example:443"), (b"origin", b"https://shop.example")]
    )
    connected, _ = await comm.connect()
    assert connected
    await comm.disconnect()
    other = WebsocketCommunicator(
        application, "/ws/visitor/", headers=[(b"host", b"chat.example:443"), (b"origin", b"https://evil.example")]
    )
    refused, _ = await other.connect()
    assert not refused
