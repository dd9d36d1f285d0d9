"""Chaos: chats go on through Redis restarts, a killed server process and a database that refuses.

The quick form (`make test`): 10 conversations (20 sockets) and one fault of each kind. The long
form is `bench/chaos.py` (200 conversations, Redis restarted five times), which runs this same
test with COACHLINE_CHAOS_* set. See tests/chaos.py for what is started and what is checked.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connections

from chat.models import Conversation, Message
from tests import serverprocs
from tests.auth import staff_session_cookie
from tests.chaos import ChaosConfig, ChaosRun, PgProxy, RedisServer
from tests.conftest import real_mode
from tests.factories import AgentFactory, DepartmentFactory, UserFactory
from tests.realmode.conftest import wait_for_other_sessions_to_end

pytestmark = [pytest.mark.realmode, pytest.mark.django_db(transaction=True)]


def _config() -> ChaosConfig:
    faults = os.environ.get("COACHLINE_CHAOS_FAULTS", "redis,daphne,postgres")
    return ChaosConfig(
        conversations=int(os.environ.get("COACHLINE_CHAOS_CONVERSATIONS", "10")),
        faults=tuple(f for f in faults.split(",") if f),
    )


def _closing(fn):
    """For asyncio.to_thread: the thread's database connection is closed after each call."""

    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        finally:
            connections.close_all()

    return call


@_closing
def _agents(count: int) -> list[str]:
    department = DepartmentFactory(name="Patient support", slug="support")
    cookies = []
    for i in range(count):
        agent = AgentFactory(user=UserFactory(username=f"chaos-agent-{i}"), display_name=f"Agent {i}",
                             departments=[department], max_chats=1)
        cookies.append(staff_session_cookie(agent.user))
    return cookies


@_closing
def _last_seqs(ids: list[int]) -> dict[int, tuple[int, int]]:
    rows = Conversation.objects.filter(pk__in=ids).values_list("pk", "last_public_seq", "last_seq")
    return {pk: (public, seq) for pk, public, seq in rows}


@_closing
def _transcripts(ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    result: dict[int, list[dict[str, Any]]] = {pk: [] for pk in ids}
    rows = Message.objects.filter(conversation_id__in=ids).order_by("conversation_id", "seq").values(
        "conversation_id", "seq", "public_seq", "client_id", "role", "body")
    for row in rows:
        result[row["conversation_id"]].append(row)
    return result


def _through(database_url: str, port: int) -> str:
    parts = urlsplit(database_url)
    auth = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{auth + '@' if auth else ''}127.0.0.1:{port}"))


async def test_chats_survive_redis_restarts_a_killed_server_and_a_refusing_database(realmode_env):
    if not real_mode():
        pytest.skip("needs PostgreSQL and Redis")
    import asyncio

    config = _config()
    cookies = await asyncio.to_thread(_agents, config.conversations)
    database_url = serverprocs.current_database_url()
    pg = urlsplit(database_url)
    proxy = PgProxy(pg.hostname or "127.0.0.1", pg.port or 5432)
    await proxy.start()
    redis = RedisServer()
    await asyncio.to_thread(redis.start)
    env = {**realmode_env, "DATABASE_URL": _through(database_url, proxy.port), "REDIS_URL": redis.url,
           "CHANNEL_LAYER_PREFIX": f"chaos-{uuid.uuid4().hex[:10]}"}
    servers: list[serverprocs.DaphneServer] = []
    try:
        servers = await asyncio.to_thread(serverprocs.start_servers, 2, env=env, name="chaos-daphne")
        run = ChaosRun(config=config, redis=redis, proxy=proxy, servers=servers, server_env=env,
                       agent_cookies=cookies, last_seqs=_last_seqs, transcripts=_transcripts)
        summary = await run.run()
        print(json.dumps(summary, indent=1))
        if out := os.environ.get("COACHLINE_CHAOS_RESULT"):
            Path(out).write_text(json.dumps(summary, indent=1))
        logs = "\n".join(s.describe() for s in run.servers)
        assert summary["problems"] == [], f"{json.dumps(summary, indent=1)}\n{logs}"
        servers = run.servers
    finally:
        await asyncio.to_thread(serverprocs.stop_all, servers)
        await proxy.close()
        await asyncio.to_thread(redis.stop)
        await asyncio.to_thread(_closing(wait_for_other_sessions_to_end))
