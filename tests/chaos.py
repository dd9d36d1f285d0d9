"""The chaos run: conversations chatting through Redis restarts, a killed server and a refusing database.

Shared by `tests/realmode/test_chaos.py` (the quick form `make test` runs) and `bench/chaos.py`
(the long form: 200 conversations, 400 sockets). Everything faulty is started here, never the
machine's own services:

- `RedisServer`: a redis-server of our own on a free port, without persistence (`--save ''`),
  stopped and started again on the same port;
- two daphne processes (tests/serverprocs.py) on free ports, pointed at that Redis and at the
  test database **through `PgProxy`**, an asyncio TCP proxy on loopback in front of the real
  PostgreSQL, which can drop every open connection and refuse new ones for a while;
- `Side`: one WebSocket client (a visitor or an agent) that behaves as docs/protocol.md says a
  client must: an outbox keyed by client_id, resent after every reconnection and after an
  `internal` error; messages merged by seq; reconnection with exponential backoff and full
  jitter (0.25 s up to 5 s) to the next server in the list, as a balancer would. Unlike the
  pages it never resends on an ack timeout (docs/protocol.md allows it): on a live socket the
  server must answer every frame, and this is where that shows.

Each fault is timed from its start to its end (Redis answering again, the killed server
answering /healthz again, the proxy accepting again); afterwards every client must be connected
and hold every message stored before the fault ended, and have its own earlier messages stored,
within `RECOVERY_LIMIT_SECONDS`. During each fault `/readyz` is polled: it must answer (never
hang) and name the failing part. At the end the transcripts in the database are compared with
what every client holds: nothing lost, nothing stored twice, each sender's messages in the order
it sent them, every client's copy identical to the stored one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from tests import serverprocs

RECOVERY_LIMIT_SECONDS = 10.0
BACKOFF_FLOOR = 0.25
BACKOFF_BASE = 0.5
BACKOFF_CAP = 5.0


def backoff_delay(attempt: int) -> float:
    """Full jitter: anywhere between the floor and the capped exponential step, so a server that
    drops every socket at once is not met by every client at the same instant."""
    return BACKOFF_FLOOR + random.random() * min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)


# --- the faulty parts -------------------------------------------------------------------------


class RedisServer:
    """A redis-server of this run's own, on a free port, without persistence."""

    def __init__(self) -> None:
        self.port = serverprocs.free_port()
        self.process: serverprocs.ManagedProcess | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--protected-mode", "no", "--maxclients", "10000"]
        self.process = serverprocs.start_process(f"chaos-redis-{self.port}", argv, env=serverprocs.child_env())
        serverprocs.wait_until(self.answers, timeout=10, process=self.process, what="redis-server to answer")

    def answers(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=5)
            self.process = None


class PgProxy:
    """A TCP proxy on loopback in front of PostgreSQL that can play dead: `refuse(seconds)` cuts
    every open connection and closes the listening socket (new connections are refused), then
    listens again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def refuse(self, seconds: float) -> None:
        await self.close()
        await asyncio.sleep(seconds)
        await self.start()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._links.update((client_w, server_w))

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.transport.abort()
                self._links.discard(writer)

        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))


# --- the clients ------------------------------------------------------------------------------


@dataclass
class Sent:
    client_id: str
    body: str
    created: float
    acked_seq: int | None = None


class ClientFailure(AssertionError):
    pass


class Side:
    """One end of a conversation: a visitor (public seq) or its agent (conversation seq)."""

    def __init__(self, *, role: str, index: int, servers: list[str], cookie: str | None = None) -> None:
        self.role = role
        self.index = index
        self.name = f"{role}{index}"
        self.servers = servers  # base URLs; shared and updated when a server moves
        self.server_index = index % len(servers)
        self.cookie = cookie
        self.token: str | None = None
        self.conversation_id: int | None = None
        self.ws: ClientConnection | None = None
        self.ready = False  # connected and resumed (welcome/state and history done)
        self.held: dict[int, dict[str, Any]] = {}  # seq -> message as received
        self.conflicts: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.repeats = 0
        self.out_of_order_live = 0
        self.sent: list[Sent] = []
        self.outbox: dict[str, Sent] = {}  # not yet acknowledged, in order
        self.in_flight: str | None = None
        self.retry_attempt = 0
        self.retry_after = 0.0
        self.connections = 0
        self.close_codes: list[int | None] = []
        self.errors: list[dict[str, Any]] = []
        self.unexpected: list[str] = []
        self._wake = asyncio.Event()
        self._counter = itertools.count()
        self.setup_done = asyncio.Event()
        self.offer: asyncio.Future[int] | None = None

    # what it holds

    def contiguous_seq(self) -> int:
        seq = 0
        while seq + 1 in self.held:
            seq += 1
        return seq

    def _keep(self, message: dict[str, Any], *, live: bool) -> None:
        seq = message["seq"]
        if seq in self.held:
            self.repeats += 1  # allowed by the protocol (history and live overlap); never different
            if _comparable(self.held[seq]) != _comparable(message):
                self.conflicts.append((self.held[seq], message))
            return
        if live and self.held and seq < max(self.held):
            self.out_of_order_live += 1
        self.held[seq] = message

    # sending

    def new_message(self) -> None:
        n = next(self._counter)
        sent = Sent(client_id=f"c{self.index}-{self.role[0]}-{n}", body=f"{self.name} says {n}", created=time.monotonic())
        self.sent.append(sent)
        self.outbox[sent.client_id] = sent
        self._wake.set()

    def _frame_for(self, sent: Sent) -> dict[str, Any]:
        frame = {"type": "message", "body": sent.body, "client_id": sent.client_id}
        if self.role == "agent":
            frame["conversation_id"] = self.conversation_id
        return frame

    async def _pump(self) -> None:
        """One message in flight at a time, oldest first: a sender's order is its send order."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.ready and self.outbox and self.in_flight is None:
                wait = self.retry_after - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                sent = next(iter(self.outbox.values()))
                self.in_flight = sent.client_id
                try:
                    await self.ws.send(json.dumps(self._frame_for(sent)))  # type: ignore[union-attr]
                except ConnectionClosed:
                    self.in_flight = None
                    break

    # receiving

    async def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "message":
            if frame.get("conversation_id") == self.conversation_id:
                self._keep(frame, live=True)
        elif kind == "history":
            if self.conversation_id is None or frame["conversation_id"] == self.conversation_id:
                for message in frame["messages"]:
                    self._keep(message, live=False)
                if self.role == "visitor" and self.conversation_id is None:
                    pass
                self._resumed()
        elif kind == "ack":
            sent = self.outbox.pop(frame["client_id"], None)
            if sent is not None:
                sent.acked_seq = frame["seq"]
            if self.in_flight == frame["client_id"]:
                self.in_flight = None
                self.retry_attempt = 0
            self._wake.set()
        elif kind == "welcome":
            if frame.get("token"):
                self.token = frame["token"]
            if frame.get("conversation") is None:
                self._resumed()  # nothing to follow yet (setup)
        elif kind == "state":
            if self.conversation_id is not None:
                held = [c["conversation_id"] for c in frame["conversations"]]
                if self.conversation_id not in held:
                    self.unexpected.append(f"{self.name} lost its chat {self.conversation_id}: state {held}")
                if self.conversation_id not in frame.get("synced", []):  # else its history follows unasked
                    await self.ws.send(json.dumps(  # type: ignore[union-attr]
                        {"type": "sync", "conversation_id": self.conversation_id, "last_seq": self.contiguous_seq()}))
            else:
                self._resumed()
        elif kind == "offer":
            await self.ws.send(json.dumps({"type": "accept", "conversation_id": frame["conversation_id"]}))  # type: ignore[union-attr]
            self.conversation_id = frame["conversation_id"]
        elif kind == "conversation":
            if self.role == "visitor" and self.conversation_id is None:
                # The chat its `start` opened (queued, then offered): its messages are this
                # client's from now on, the "joined" line included, which comes live before the
                # `active` frame. (Dropping it went unnoticed while every Redis restart made all
                # clients reconnect and fetch their whole history again.)
                self.conversation_id = frame["conversation_id"]
            if self.role == "visitor" and frame.get("status") == "active":
                self.setup_done.set()
            if self.role == "agent" and frame.get("status") == "active":
                self.setup_done.set()
        elif kind == "error":
            self.errors.append(frame)
            ref = frame.get("ref")
            if ref is not None and ref == self.in_flight:
                if frame["code"] in ("internal", "rate_limited"):
                    # Kept and sent again after a pause (docs/protocol.md, Errors).
                    self.retry_after = time.monotonic() + backoff_delay(self.retry_attempt)
                    self.retry_attempt += 1
                    self.in_flight = None
                    self._wake.set()
                else:
                    self.unexpected.append(f"{self.name} refused for good: {frame}")
                    self.outbox.pop(ref, None)
                    self.in_flight = None
            elif frame["code"] != "internal":
                self.unexpected.append(f"{self.name} got {frame}")

    def _resumed(self) -> None:
        if not self.ready:
            self.ready = True
            self.in_flight = None  # whatever was in flight on the old socket is sent again
            self._wake.set()

    # the connection loop

    async def run(self) -> None:
        pump = asyncio.create_task(self._pump())
        attempt = 0
        try:
            while True:
                base = self.servers[self.server_index]
                headers = {"Cookie": self.cookie} if self.cookie else None
                path = "/ws/agent/" if self.role == "agent" else "/ws/visitor/"
                try:
                    ws = await connect(base.replace("http", "ws", 1) + path, origin=base, additional_headers=headers,
                                       open_timeout=10, ping_interval=None, max_queue=None)
                except (OSError, InvalidHandshake, TimeoutError) as exc:
                    if isinstance(exc, InvalidStatus) and exc.response.status_code == 403:
                        self.unexpected.append(f"{self.name} refused with 403 at {base}")
                    self.server_index = (self.server_index + 1) % len(self.servers)
                    await asyncio.sleep(backoff_delay(attempt))
                    attempt += 1
                    continue
                self.ws = ws
                self.connections += 1
                try:
                    if self.role == "visitor":
                        await ws.send(json.dumps({"type": "hello", "token": self.token, "last_seq": self.contiguous_seq()}))
                    async for raw in ws:
                        attempt = 0
                        await self._on_frame(json.loads(raw))
                except ConnectionClosed:
                    pass
                finally:
                    self.ready = False
                    if ws.close_code is not None:  # not when the run itself stops
                        self.close_codes.append(ws.close_code)
                # Reconnect (to the next server, as a balancer would when this one went away).
                self.server_index = (self.server_index + 1) % len(self.servers)
                await asyncio.sleep(backoff_delay(attempt))
                attempt += 1
        finally:
            pump.cancel()
            if self.ws is not None:
                await self.ws.close()

    def caught_up(self, *, stored_last: int, created_before: float) -> bool:
        if not self.ready or self.contiguous_seq() < stored_last:
            return False
        return self.acked_all(created_before=created_before)

    def acked_all(self, *, created_before: float) -> bool:
        return all(s.acked_seq is not None for s in self.sent if s.created < created_before)


def _comparable(message: dict[str, Any]) -> tuple[Any, ...]:
    return (message["seq"], message.get("body"), message.get("client_id"), message.get("role"))


# --- one run ----------------------------------------------------------------------------------


@dataclass
class FaultReport:
    kind: str
    started: float
    ended: float = 0.0
    recovery_seconds: list[float] = field(default_factory=list)
    # Where the recovery time went, per client: holding every stored message, and every earlier
    # message of its own acknowledged (recovery is the later of the two).
    held_seconds: list[float] = field(default_factory=list)
    acked_seconds: list[float] = field(default_factory=list)
    not_recovered: list[str] = field(default_factory=list)
    connections_before: dict[str, int] = field(default_factory=dict)
    slowest: list[tuple[float, str]] = field(default_factory=list)  # (seconds, who and how)
    readyz: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)

    def ready_again_by_server(self, servers: Sequence[str] = ()) -> list[float | None]:
        """Per server, seconds from the fault's end to the first probe sent after it that /readyz
        answered 200 (None: not yet): for a Redis restart, when the server's layer watch had the
        layer back. Probes still running are not in `readyz` yet."""
        end = self.ended - self.started
        first: dict[str, float | None] = dict.fromkeys(servers)
        for probe in sorted(self.readyz, key=lambda p: p["t"]):
            first.setdefault(probe["server"], None)
            if probe["t"] >= end and probe["status"] == 200 and first[probe["server"]] is None:
                first[probe["server"]] = round(probe["t"] - end, 2)
        return list(first.values())

    def summary(self) -> dict[str, Any]:
        rec = sorted(self.recovery_seconds)
        return {
            "kind": self.kind,
            "fault_seconds": round(self.ended - self.started, 2),
            "recovery_p50": round(statistics.median(rec), 2) if rec else None,
            "recovery_max": round(max(rec), 2) if rec else None,
            "not_recovered": len(self.not_recovered),
            "held_p50": _median(self.held_seconds),
            "held_max": round(max(self.held_seconds), 2) if self.held_seconds else None,
            "acked_p50": _median(self.acked_seconds),
            "acked_max": round(max(self.acked_seconds), 2) if self.acked_seconds else None,
            "ready_again": self.ready_again_by_server(),
            "slowest": [f"{who}: {seconds} s" for seconds, who in sorted(self.slowest, reverse=True)[:5]],
            "readyz": _readyz_summary(self.readyz),
            "log_lines": self.log_lines[:3],
        }


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _readyz_summary(probes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    failing: set[str] = set()
    for probe in probes:
        statuses[str(probe["status"])] = statuses.get(str(probe["status"]), 0) + 1
        failing.update(probe.get("failing", []))
    return {"answers": statuses, "failing": sorted(failing),
            "slowest_ms": max((p["ms"] for p in probes), default=None)}


def probe_readyz(base: str) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {"server": base}
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=8) as response:
            result["status"] = response.status
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        result["status"] = exc.code
        try:
            body = json.loads(exc.read())
        except ValueError:
            body = {}
    except (OSError, TimeoutError) as exc:
        result["status"] = f"unreachable ({type(exc).__name__})"
        body = {}
    result["ms"] = round((time.perf_counter() - started) * 1000)
    result["failing"] = sorted(name for name, check in body.get("checks", {}).items() if not check.get("ok"))
    return result


@dataclass
class ChaosConfig:
    conversations: int = 10
    faults: Sequence[str] = ("redis", "daphne", "postgres")
    message_interval: float = 3.0  # per side: 20 a minute, under the visitor rate limit of 30 even after a backlog
    redis_down_seconds: float = 3.0
    daphne_down_seconds: float = 1.0
    postgres_refuse_seconds: float = 5.0
    settle_seconds: float = 3.0  # steady traffic between faults


Transcripts = Callable[[list[int]], dict[int, list[dict[str, Any]]]]
LastSeqs = Callable[[list[int]], dict[int, tuple[int, int]]]


class ChaosRun:
    """Owns the clients and the faults of one run; the caller owns Redis, the proxy, the servers
    and the database reads (`last_seqs`: conversation id -> (last public seq, last seq);
    `transcripts`: every stored message of each conversation)."""

    def __init__(self, *, config: ChaosConfig, redis: RedisServer, proxy: PgProxy,
                 servers: list[serverprocs.DaphneServer], server_env: dict[str, str],
                 agent_cookies: list[str], last_seqs: LastSeqs, transcripts: Transcripts) -> None:
        self.config = config
        self.redis = redis
        self.proxy = proxy
        self.servers = servers
        self.server_env = server_env
        self.urls = [s.base_url for s in servers]
        self.agents = [Side(role="agent", index=i, servers=self.urls, cookie=c) for i, c in enumerate(agent_cookies)]
        self.visitors = [Side(role="visitor", index=i, servers=self.urls) for i in range(config.conversations)]
        self.last_seqs = last_seqs
        self.transcripts = transcripts
        self.faults: list[FaultReport] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.traffic_on = False
        self.problems: list[str] = []
        self._probe_pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="readyz")

    @property
    def sides(self) -> list[Side]:
        return self.agents + self.visitors

    # setup

    async def _until(self, check: Callable[[], bool], *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise ClientFailure(f"timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(0.05)

    async def setup(self) -> None:
        # In batches: the set-up measures nothing, and 200 handshakes at once only time out.
        for batch in range(0, len(self.agents), 20):
            chunk = self.agents[batch:batch + 20]
            for agent in chunk:
                self.tasks.append(asyncio.create_task(agent.run()))
            await self._until(lambda chunk=chunk: all(a.ready for a in chunk), timeout=180, what="agents connected")
        for agent in self.agents:
            await agent.ws.send(json.dumps({"type": "presence", "status": "online"}))  # type: ignore[union-attr]
        await asyncio.sleep(0.5)
        for batch in range(0, len(self.visitors), 25):
            chunk = self.visitors[batch:batch + 25]
            for visitor in chunk:
                self.tasks.append(asyncio.create_task(visitor.run()))
            await self._until(lambda chunk=chunk: all(v.ready for v in chunk), timeout=180, what="visitors connected")
            for visitor in chunk:
                await visitor.ws.send(json.dumps({"type": "start", "department": "support", "name": visitor.name}))  # type: ignore[union-attr]
            await self._until(lambda chunk=chunk: all(v.setup_done.is_set() for v in chunk), timeout=180,
                              what="chats started and accepted")
        await self._until(lambda: all(a.setup_done.is_set() and a.conversation_id for a in self.agents),
                          timeout=60, what="every agent holding its chat")

    # traffic

    async def _talk(self, side: Side) -> None:
        await asyncio.sleep(random.random() * self.config.message_interval)
        while self.traffic_on:
            side.new_message()
            await asyncio.sleep(self.config.message_interval * random.uniform(0.5, 1.5))

    # faults

    def _log_sizes(self) -> list[int]:
        return [len(s.log_text()) for s in self.servers]

    def _new_log_lines(self, sizes: list[int], servers: list[serverprocs.DaphneServer], words: Sequence[str]) -> list[str]:
        lines = []
        for server, size in zip(servers, sizes, strict=False):
            for line in server.log_text()[size:].splitlines():
                if any(w in line for w in words) and ("WARNING" in line or "ERROR" in line):
                    lines.append(f"{server.name}: {line.strip()[:200]}")
        return lines

    async def _poll_readyz(self, report: FaultReport, stop: asyncio.Event) -> None:
        """Every 0.25 s on every server, as a balancer would, without waiting for slow answers."""

        async def one(url: str) -> None:
            sent = round(time.monotonic() - report.started, 2)
            # Threads of their own: slow answers must not hold up the faults or the measurements.
            probe = await asyncio.get_running_loop().run_in_executor(self._probe_pool, probe_readyz, url)
            probe["t"] = sent
            report.readyz.append(probe)

        probes = []
        while not stop.is_set():
            probes.extend(asyncio.create_task(one(url)) for url in self.urls)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)
        await asyncio.gather(*probes)
        report.readyz.sort(key=lambda p: p["t"])

    async def fault(self, kind: str) -> FaultReport:
        report = FaultReport(kind=kind, started=time.monotonic(),
                             connections_before={s.name: s.connections for s in self.sides})
        sizes = self._log_sizes()
        servers_before = list(self.servers)
        stop = asyncio.Event()
        poller = asyncio.create_task(self._poll_readyz(report, stop))
        await asyncio.sleep(0.2)
        if kind == "redis":
            await asyncio.to_thread(self.redis.stop)
            await asyncio.sleep(self.config.redis_down_seconds)
            await asyncio.to_thread(self.redis.start)
            # Until the servers notice, /readyz may still say ready: give the poller a moment.
        elif kind == "daphne":
            victim = self.servers[1]
            await asyncio.to_thread(victim.kill)
            await asyncio.sleep(self.config.daphne_down_seconds)
            self.servers[1] = await asyncio.to_thread(self._restart_on, victim)
        elif kind == "postgres":
            await self.proxy.refuse(self.config.postgres_refuse_seconds)
        else:
            raise ValueError(kind)
        report.ended = time.monotonic()
        await self._measure_recovery(report)
        # Clients may be caught up before a server's layer watch has its next good probe (CI
        # once: caught up 0.5 s after Redis was back, /readyz still 503 0.4 s after): keep asking
        # until every server is ready again, as a balancer would, up to the same limit.
        with contextlib.suppress(ClientFailure):
            await self._until(lambda: None not in report.ready_again_by_server(self.urls),
                              timeout=max(0.0, report.ended + RECOVERY_LIMIT_SECONDS - time.monotonic()),
                              what="every server ready again")
        stop.set()
        await poller
        words = {"redis": ("channel layer", "Redis", "redis"), "postgres": ("database",), "daphne": ()}[kind]
        report.log_lines = self._new_log_lines(sizes, servers_before, words) if words else []
        self.faults.append(report)
        return report

    def _restart_on(self, old: serverprocs.DaphneServer) -> serverprocs.DaphneServer:
        server = serverprocs.DaphneServer(
            name=f"chaos-daphne-{old.port}-restarted", host=old.host, port=old.port, env=self.server_env,
            log_path=serverprocs.artifact_path(f"chaos-daphne-{old.port}-restarted"))
        serverprocs.wait_until(lambda: serverprocs.http_ok(server.url("/healthz")), timeout=60, process=server,
                               what="the restarted server to answer /healthz")
        return server

    async def _measure_recovery(self, report: FaultReport) -> None:
        ids = [v.conversation_id for v in self.visitors]
        stored = await asyncio.to_thread(self.last_seqs, ids)  # type: ignore[arg-type]
        pending = {side: stored[side.conversation_id][0 if side.role == "visitor" else 1] for side in self.sides}  # type: ignore[index]
        deadline = report.ended + 3 * RECOVERY_LIMIT_SECONDS
        held: set[Side] = set()
        acked: set[Side] = set()
        while pending and time.monotonic() < deadline:
            now = time.monotonic()
            for side, last in list(pending.items()):
                if side not in held and side.ready and side.contiguous_seq() >= last:
                    held.add(side)
                    report.held_seconds.append(now - report.ended)
                if side not in acked and side.acked_all(created_before=report.ended):
                    acked.add(side)
                    report.acked_seconds.append(now - report.ended)
                if side.caught_up(stored_last=last, created_before=report.ended):
                    report.recovery_seconds.append(now - report.ended)
                    report.slowest.append((round(now - report.ended, 2), (
                        f"{side.name} on server {side.server_index}"
                        f" after {side.connections - report.connections_before.get(side.name, 0)} new connections")))
                    del pending[side]
            await asyncio.sleep(0.1)
        for side, last in pending.items():
            report.not_recovered.append(
                f"{side.name} (chat {side.conversation_id}): ready={side.ready}, holds up to {side.contiguous_seq()} of {last}, "
                f"unacked {[s.client_id for s in side.sent if s.acked_seq is None and s.created < report.ended]}")

    # the whole run

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        try:
            await self.setup()
            self.traffic_on = True
            talkers = [asyncio.create_task(self._talk(s)) for s in self.sides]
            await asyncio.sleep(self.config.settle_seconds)
            for kind in self.config.faults:
                await self.fault(kind)
                await asyncio.sleep(self.config.settle_seconds)
            self.traffic_on = False
            await asyncio.gather(*talkers)
            try:
                # Up to a minute and more: a visitor over its rate limit waits for the window to pass.
                await self._until(lambda: all(not s.outbox for s in self.sides), timeout=75,
                                  what="every message acknowledged after the last fault")
            except ClientFailure as exc:
                left = [f"{s.name} (ready={s.ready}, unacked {list(s.outbox)[:3]}, last errors {s.errors[-2:]})"
                        for s in self.sides if s.outbox]
                self.problems.append(f"{exc}: {len(left)} clients: {left[:5]}")
            ids = [v.conversation_id for v in self.visitors]
            stored = await asyncio.to_thread(self.last_seqs, ids)  # type: ignore[arg-type]
            with contextlib.suppress(ClientFailure):
                await self._until(lambda: all(
                    s.contiguous_seq() >= stored[s.conversation_id][0 if s.role == "visitor" else 1]  # type: ignore[index]
                    for s in self.sides), timeout=15, what="every client holding every stored message")
            self.verify(await asyncio.to_thread(self.transcripts, ids))  # type: ignore[arg-type]
        finally:
            self.traffic_on = False
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            self._probe_pool.shutdown(wait=False)
        return self.summary(time.monotonic() - started)

    def verify(self, transcripts: dict[int, list[dict[str, Any]]]) -> None:
        problems = self.problems
        agents = {a.conversation_id: a for a in self.agents}
        for visitor in self.visitors:
            cid = visitor.conversation_id
            agent = agents.get(cid)
            if cid is None or agent is None:
                problems.append(f"{visitor.name} has no chat with an agent")
                continue
            rows = transcripts[cid]
            if [r["seq"] for r in rows] != list(range(1, len(rows) + 1)):
                problems.append(f"chat {cid}: stored seqs are not 1..n: {[r['seq'] for r in rows]}")
            stored_ids = [r["client_id"] for r in rows if r["client_id"]]
            dupes = {c for c in stored_ids if stored_ids.count(c) > 1}
            if dupes:
                problems.append(f"chat {cid}: stored twice: {sorted(dupes)}")
            for side in (visitor, agent):
                mine = [s.client_id for s in side.sent]
                lost = [c for c in mine if c not in stored_ids]
                if lost:
                    problems.append(f"chat {cid}: {side.name} sent {len(lost)} never stored: {lost[:5]}")
                order = [c for c in stored_ids if c in set(mine)]
                if order != [c for c in mine if c in order]:
                    problems.append(f"chat {cid}: {side.name}'s messages stored out of order: {order}")
                unacked = [s.client_id for s in side.sent if s.acked_seq is None]
                if unacked:
                    problems.append(f"chat {cid}: {side.name} never got an ack for {unacked[:5]}")
                if side.conflicts:
                    problems.append(f"chat {cid}: {side.name} got two different messages under one seq: {side.conflicts[:2]}")
                problems.extend(side.unexpected)
            public = {r["public_seq"]: r for r in rows if r["public_seq"] is not None}
            _compare_copy(problems, visitor, public)
            _compare_copy(problems, agent, {r["seq"]: r for r in rows})
        for report in self.faults:
            if report.not_recovered:
                problems.append(f"{report.kind}: {len(report.not_recovered)} clients not caught up within "
                                f"{3 * RECOVERY_LIMIT_SECONDS:.0f}s: {report.not_recovered[:3]}")
            slow = [r for r in report.recovery_seconds if r > RECOVERY_LIMIT_SECONDS]
            if slow:
                problems.append(f"{report.kind}: {len(slow)} clients took longer than {RECOVERY_LIMIT_SECONDS}s: max {max(slow):.1f}s")
            expected = {"redis": "channel_layer", "postgres": "database"}.get(report.kind)
            if expected:
                if not any(p["status"] == 503 and expected in p["failing"] for p in report.readyz):
                    problems.append(f"{report.kind}: /readyz never answered 503 naming {expected}: {_readyz_summary(report.readyz)}")
                if not report.log_lines:
                    problems.append(f"{report.kind}: no server logged a warning about it")
            # Hanging = no answer within the probe's 8 s (a balancer's timeout); each check has
            # 2 s, and on a loaded machine the answer itself may queue a few seconds more.
            hung = [p for p in report.readyz if "TimeoutError" in str(p["status"]) or p["ms"] >= 8000]
            if hung:
                problems.append(f"{report.kind}: /readyz did not answer within 8 s: {hung[:2]}")
            if None in report.ready_again_by_server(self.urls):
                problems.append(f"{report.kind}: /readyz not ready again within {RECOVERY_LIMIT_SECONDS:.0f}s "
                                f"of the fault ending: {report.readyz[-3:]}")

    def summary(self, seconds: float) -> dict[str, Any]:
        stored = sum(len(s.sent) for s in self.sides)
        return {
            "conversations": len(self.visitors),
            "sockets": len(self.sides),
            "seconds": round(seconds, 1),
            "messages": stored,
            "reconnections": sum(s.connections - 1 for s in self.sides),
            "close_codes": _count(c for s in self.sides for c in s.close_codes),
            "internal_errors": sum(1 for s in self.sides for e in s.errors if e.get("code") == "internal"),
            "rate_limited": sum(1 for s in self.sides for e in s.errors if e.get("code") == "rate_limited"),
            "repeats_deduplicated": sum(s.repeats for s in self.sides),
            "out_of_order_live": sum(s.out_of_order_live for s in self.sides),
            "faults": [f.summary() for f in self.faults],
            "problems": self.problems,
        }


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return counts


def _compare_copy(problems: list[str], side: Side, stored: dict[int, dict[str, Any]]) -> None:
    # Visitors are told only their own client_ids (docs/protocol.md): compare what each side gets.
    own = "visitor" if side.role == "visitor" else None
    held = {seq: (m.get("body"), m.get("role"), m.get("client_id")) for seq, m in side.held.items()}
    want = {seq: (r["body"], r["role"], r["client_id"] if own in (None, r["role"]) else None)
            for seq, r in stored.items()}
    if held != want:
        missing = sorted(set(want) - set(held))
        extra = sorted(set(held) - set(want))
        differ = [s for s in set(held) & set(want) if held[s] != want[s]]
        problems.append(f"{side.name} (chat {side.conversation_id}) holds a different transcript: missing {missing[:8]}, "
                        f"unknown {extra[:8]}, different {differ[:8]}")
