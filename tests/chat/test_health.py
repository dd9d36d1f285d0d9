"""/healthz says the process answers; /readyz says whether it can serve chats, and why not."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings
from django.db import connections
from django.test import AsyncClient

from chat import health
from tests import serverprocs
from tests.conftest import REAL_MODE

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _close_probe_connections():
    # The database probe runs on the thread-sensitive executor thread, whose connection would
    # otherwise stay open and block dropping the PostgreSQL test database.
    yield
    await sync_to_async(connections.close_all, thread_sensitive=True)()


async def test_readyz_reports_every_dependency_ready():
    response = await AsyncClient().get("/readyz")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ready"] is True
    expected = {"database", "channel_layer", "celery"} | ({"redis"} if REAL_MODE else set())
    assert set(body["checks"]) == expected
    assert all(check["ok"] for check in body["checks"].values())


async def test_the_database_check_leaves_no_connection_open():
    # Each /readyz request runs on a thread of its own: a connection left open there stayed open
    # for CONN_MAX_AGE, and a balancer polling often exhausted PostgreSQL's max_connections.
    from django.db import connection

    def check_then_look() -> bool:
        health._database()
        return connection.connection is None

    assert await sync_to_async(check_then_look, thread_sensitive=False)()


async def test_healthz_answers_without_touching_dependencies():
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_a_channel_layer_that_cannot_be_reached_makes_the_process_unready():
    dead = RedisPubSubChannelLayer(hosts=[f"redis://127.0.0.1:{serverprocs.free_port()}/0"])

    result = await health.readiness(layer=dead)

    assert result["ready"] is False
    layer_check = result["checks"]["channel_layer"]
    assert layer_check["ok"] is False
    assert "Error" in layer_check["error"]  # names the failure for the operator
    assert result["checks"]["database"]["ok"] is True  # the others are still reported


@pytest.mark.realmode
async def test_readyz_probes_leave_no_subscription_behind():
    layer = RedisPubSubChannelLayer(hosts=[settings.REDIS_URL], prefix="readyz-test")
    for _ in range(3):
        assert (await health.readiness(layer=layer))["checks"]["channel_layer"]["ok"]
    assert layer._get_layer().channels == {}
    await layer.flush()


async def test_readyz_names_the_channel_layer_while_this_process_has_seen_it_broken(monkeypatch):
    # The watch (chat/layer_watch.py) saw the live stream break and has not repaired it yet:
    # a fresh probe might pass, but this process' sockets are not receiving, so it is not ready.
    from chat import layer_watch

    monkeypatch.setattr(layer_watch, "_down_since", __import__("time").monotonic() - 3)
    monkeypatch.setattr(layer_watch, "_last_error", "ConnectionError: Connection closed by server.")

    response = await AsyncClient().get("/readyz")

    assert response.status_code == 503
    check = response.json()["checks"]["channel_layer"]
    assert check["ok"] is False
    assert "unreachable for 3" in check["error"] and "Connection closed by server" in check["error"]
