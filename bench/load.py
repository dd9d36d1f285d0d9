"""WebSocket load benchmark: message latency, loss, throughput, memory per socket, CPU.

    .venv/bin/python bench/load.py            # the full run (about 15 minutes); writes docs/benchmarks.md
    .venv/bin/python bench/load.py --quick    # a smoke run (about 2 minutes); prints, writes nothing
    .venv/bin/python bench/load.py --targets relay1,real1 --runs 1 --idle-sockets 0   # a part of it
    make bench-load / make bench-load-quick   # the same two

Self-contained: it starts its own redis-server on a free loopback port, its own daphne processes,
and uses its own PostgreSQL databases (`coachline_load_bench`, migrated, as the template of one
scratch copy per target, dropped afterwards); the machine's Redis and the project's databases are
never touched. Everything it started is stopped at the end, on Ctrl-C, on SIGTERM and on failure.
PostgreSQL is reached at BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432).

The generator is one asyncio process using the `websockets` client library and speaking the
protocol of docs/protocol.md: N visitor/agent pairs (each visitor sends hello and start, an agent
accepts the offer) exchange messages at a set total rate, alternating direction. For every message
it measures the time from send to delivery on the other side, and counts lost, duplicated and
out-of-order deliveries and error frames (there must be none). A rate search (geometric ramp, then
bisection) finds the highest rate at which p99 stays under 100 ms with nothing lost. Before that it
holds many idle visitor sockets for a while, each sending the protocol's `ping` every 20 s, and
reports the server processes' RSS growth per socket. CPU of the server processes is read from /proc.

Targets, each on fresh server processes:
  relay1    the BASELINE: a bare Channels pair-relay consumer (bench/relay_asgi.py) on the same
            daphne, settings and Redis pub/sub layer, no database; the others are given as ratios
  real1     real mode: PostgreSQL + channels-redis, one daphne process
  relay2    the baseline on two daphne processes
  real2     real mode on two daphne processes; the generator spreads sockets over them (each
            pair's visitor and agent on different processes, so every message crosses Redis)
  embedded  the embedded default: SQLite, in-memory channel layer, one daphne process

File descriptors: each socket is a descriptor in the generator and in a server, so the generator
raises its soft RLIMIT_NOFILE to the hard limit (and fails early if that is below what is asked);
the daphne and redis processes it starts inherit it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import docs_block
from bench import machine as bench_machine
from tests import serverprocs

PG = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
TEMPLATE_DB = "coachline_load_bench"
P99_LIMIT_MS = 100.0


# --- set-up of a target (runs in a child process with the target's environment) ------------------


def setup_main(agents: int, out: Path) -> None:
    """Migrate the database, create a department and agents, write their session cookies."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    if agents == 0:
        return
    from django.contrib.auth import get_user_model

    from chat.models import AgentProfile, Department
    from tests.auth import staff_session_cookie

    department, _ = Department.objects.get_or_create(
        slug="bench", defaults={"name": "Bench", "accept_timeout_seconds": 600}
    )
    cookies = []
    for i in range(agents):
        user, _ = get_user_model().objects.get_or_create(username=f"bench-agent-{i}")
        profile, _ = AgentProfile.objects.get_or_create(
            user=user, defaults={"display_name": f"Bench Agent {i}", "max_chats": 10_000}
        )
        profile.departments.add(department)
        cookies.append(staff_session_cookie(user))
    out.write_text(json.dumps(cookies))


# --- measurement ----------------------------------------------------------------------------------


@dataclass(eq=False)
class Step:
    rate: float
    index: int = 0
    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    duplicates: int = 0
    out_of_order: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    send_seconds: float = 0.0
    wall_seconds: float = 0.0
    # The generator's own CPU, and how busy the whole machine was (100 % = every core): whether
    # a failing step was the server's limit or the machine's (generator, PostgreSQL, Redis too).
    generator_cpu_seconds: float = 0.0
    machine_busy: float = 0.0
    # CPU time the hypervisor ran other guests on this machine's cores (bench/machine.py): over
    # the step, and in its worst 0.2 s. A p99 miss with a steal burst is the host's hiccup.
    steal: float = 0.0
    steal_peak: float = 0.0

    @property
    def delivered(self) -> int:
        return len(self.latencies_ms)

    @property
    def lost(self) -> int:
        return self.sent - self.delivered

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))]

    @property
    def achieved(self) -> float:
        """Messages per second the generator really sent (it may fall behind the offered rate)."""
        return self.sent / self.send_seconds if self.send_seconds else 0.0

    @property
    def ok(self) -> bool:
        return (
            self.sent > 0 and self.lost == 0 and self.duplicates == 0 and self.out_of_order == 0
            and not self.errors and self.pct(0.99) < P99_LIMIT_MS and self.achieved >= 0.95 * self.rate
        )

    def line(self) -> str:
        errors = ",".join(f"{k}:{v}" for k, v in self.errors.items()) or "none"
        return (f"{self.rate:>6.0f}/s (sent {self.achieved:6.0f}/s): p50 {self.pct(.5):6.1f} p95 {self.pct(.95):6.1f} "
                f"p99 {self.pct(.99):7.1f} ms, lost {self.lost} dup {self.duplicates} ooo {self.out_of_order}, "
                f"errors {errors}, server cpu {100 * self.cpu_seconds / self.wall_seconds:4.0f}%, "
                f"generator {100 * self.generator_cpu_seconds / self.wall_seconds:3.0f}%, "
                f"machine {100 * self.machine_busy:3.0f}% busy, steal {100 * self.steal:.0f}% "
                f"(worst 0.2 s {100 * self.steal_peak:.0f}%){'  ok' if self.ok else '  FAIL'}")


def count_error(step: Step | None, code: object) -> None:
    if step is not None:
        key = str(code)
        step.errors[key] = step.errors.get(key, 0) + 1


class Pair:
    """One conversation: a visitor side `v` and an agent side `a`; bodies are `m <dir> <step> <n>`."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.conversation_id: int | None = None
        self.active = asyncio.Event()
        self.sent_at: dict[tuple[str, int, int], float] = {}
        self.last: dict[tuple[str, int], int] = {}
        self.seen: set[tuple[str, int, int]] = set()
        self.send_v = None  # set by the target: async callables taking the body text
        self.send_a = None

    def delivered(self, body: str, step: Step) -> None:
        parts = body.split()
        if len(parts) != 4 or parts[0] != "m":
            return
        key = (parts[1], int(parts[2]), int(parts[3]))
        if key[1] != step.index:
            return  # a late delivery from an earlier step: that step already counted it lost
        now = time.perf_counter()
        if key in self.seen:
            step.duplicates += 1
            return
        self.seen.add(key)
        if key[2] != self.last.get(key[:2], -1) + 1:
            step.out_of_order += 1
        self.last[key[:2]] = key[2]
        step.latencies_ms.append((now - self.sent_at.pop(key)) * 1000)


def cpu_of(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these processes and their waited-for children."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of every core so far, from /proc/stat."""
    fields = bench_machine.cpu_fields()
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def machine() -> dict[str, str]:
    return {"cores": str(os.cpu_count()), "cpu": bench_machine.cpu_name(),
            "python": platform.python_version(), "host": platform.node()}


def loadavg() -> float:
    return os.getloadavg()[0]


# --- the two kinds of target ----------------------------------------------------------------------


class ChatTarget:
    """The project: visitors on /ws/visitor/, agents on /ws/agent/ with session cookies."""

    def __init__(self, servers: list[serverprocs.DaphneServer], cookies: list[str]) -> None:
        self.servers = servers
        self.cookies = cookies
        self.pairs: list[Pair] = []
        self.current: Step | None = None
        self._by_conversation: dict[int, Pair] = {}
        self._sockets: list[ClientConnection] = []
        self._tasks: list[asyncio.Task] = []

    def _server(self, i: int) -> serverprocs.DaphneServer:
        return self.servers[i % len(self.servers)]

    async def open(self, n_pairs: int) -> None:
        agents = []
        for i, cookie in enumerate(self.cookies):
            server = self._server(i)
            ws = await connect(
                server.ws_url("/ws/agent/"), origin=server.base_url, additional_headers={"Cookie": cookie},
                max_size=2**20,
            )
            self._sockets.append(ws)
            agents.append(ws)
            self._tasks.append(asyncio.create_task(self._agent_reader(ws)))
            await ws.send('{"type": "presence", "status": "online"}')
        for i in range(n_pairs):
            pair = Pair(i)
            self.pairs.append(pair)
            server = self._server(i + 1)  # visitors and their agents mostly on different processes
            ws = await connect(server.ws_url("/ws/visitor/"), origin=server.base_url, max_size=2**20)
            self._sockets.append(ws)
            await ws.send('{"type": "hello", "token": null}')
            started = asyncio.get_running_loop().create_future()
            self._tasks.append(asyncio.create_task(self._visitor_reader(ws, pair, started)))
            await ws.send(orjson.dumps({"type": "start", "department": "bench", "name": f"V{i}"}).decode())
            pair.conversation_id = await asyncio.wait_for(started, 30)
            self._by_conversation[pair.conversation_id] = pair

            async def send_v(body: str, ws=ws) -> None:
                await ws.send(orjson.dumps({"type": "message", "body": body, "client_id": uuid.uuid4().hex}).decode())

            pair.send_v = send_v
        await asyncio.wait_for(asyncio.gather(*(p.active.wait() for p in self.pairs)), 120)

    async def _visitor_reader(self, ws: ClientConnection, pair: Pair, started: asyncio.Future) -> None:
        async for raw in ws:
            frame = orjson.loads(raw)
            kind = frame.get("type")
            if os.environ.get("BENCH_DEBUG"):
                print("V", raw[:200])
            if kind == "error":
                count_error(self.current, frame.get("code"))
            if kind == "conversation" and not started.done():
                started.set_result(frame["conversation_id"])
            elif kind == "message" and frame.get("role") == "agent" and self.current is not None:
                pair.delivered(frame["body"], self.current)

    async def _agent_reader(self, ws: ClientConnection) -> None:
        async for raw in ws:
            frame = orjson.loads(raw)
            kind = frame.get("type")
            if kind == "error":
                count_error(self.current, frame.get("code"))
            if kind == "offer":
                await ws.send(orjson.dumps({"type": "accept", "conversation_id": frame["conversation_id"]}).decode())
            elif kind == "history" or (kind == "conversation" and frame.get("status") == "active"):
                pair = self._by_conversation.get(frame.get("conversation_id"))
                while pair is None:  # the visitor's reader may not have registered it yet
                    await asyncio.sleep(0.01)
                    pair = self._by_conversation.get(frame.get("conversation_id"))
                if pair.send_a is None:
                    cid = pair.conversation_id

                    async def send_a(body: str, ws=ws, cid=cid) -> None:
                        await ws.send(
                            orjson.dumps(
                                {"type": "message", "conversation_id": cid, "body": body, "client_id": uuid.uuid4().hex}
                            ).decode()
                        )

                    pair.send_a = send_a
                    pair.active.set()
            elif kind == "message" and frame.get("role") == "visitor" and self.current is not None:
                pair = self._by_conversation.get(frame["conversation_id"])
                if pair is not None:
                    pair.delivered(frame["body"], self.current)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for ws in self._sockets:
            with contextlib.suppress(Exception):
                await ws.close()


class RelayTarget(ChatTarget):
    """The baseline: two bare sockets per pair relaying through the channel layer."""

    async def open(self, n_pairs: int) -> None:
        for i in range(n_pairs):
            pair = Pair(i)
            self.pairs.append(pair)
            sides = {}
            for side, server in (("a", self._server(i)), ("b", self._server(i + 1))):
                ws = await connect(server.ws_url(f"/ws/relay/{i}/{side}/"), origin=server.base_url)
                self._sockets.append(ws)
                sides[side] = ws
                self._tasks.append(asyncio.create_task(self._reader(ws, pair)))
            await asyncio.sleep(0)

            async def send_v(body: str, ws=sides["a"]) -> None:
                await ws.send(orjson.dumps({"type": "message", "body": body}).decode())

            async def send_a(body: str, ws=sides["b"]) -> None:
                await ws.send(orjson.dumps({"type": "message", "body": body}).decode())

            pair.send_v, pair.send_a = send_v, send_a
        await asyncio.sleep(0.5)  # group_add is done before accept; give the layer a moment anyway

    async def _reader(self, ws: ClientConnection, pair: Pair) -> None:
        async for raw in ws:
            if self.current is not None:
                pair.delivered(orjson.loads(raw)["body"], self.current)


# --- the services the targets share: a private redis-server and scratch databases ----------------


def start_redis() -> tuple[serverprocs.ManagedProcess, str]:
    """A redis-server of our own on a free loopback port: no disk, never the machine's Redis."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server); the benchmark starts its own.")
    port = serverprocs.free_port()
    proc = serverprocs.start_process(
        f"bench-redis-{port}",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--maxclients", "20000", "--protected-mode", "yes"],
        env=serverprocs.child_env(),
    )

    def answers() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        return False

    serverprocs.wait_until(answers, timeout=15, process=proc, what=f"redis-server on port {port}")
    return proc, f"redis://127.0.0.1:{port}/0"


def psql(sql: str) -> None:
    subprocess.run(["psql", f"{PG}/postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True,
                   stdout=subprocess.DEVNULL)


def database_exists(name: str) -> bool:
    out = subprocess.run(["psql", f"{PG}/postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
                         check=True, capture_output=True, text=True).stdout
    return out.strip() == "1"


def migrate_template(env: dict[str, str]) -> None:
    """Create coachline_load_bench if missing and bring it up to date; targets copy it."""
    if not database_exists(TEMPLATE_DB):
        psql(f"CREATE DATABASE {TEMPLATE_DB}")
    subprocess.run([sys.executable, __file__, "--setup", "0", "--out", os.devnull],
                   env={**env, "DATABASE_URL": f"{PG}/{TEMPLATE_DB}"}, check=True, cwd=ROOT)


# --- one step, the rate search, the idle hold ------------------------------------------------------


STEP_COUNTER = 0


async def run_step(target: ChatTarget, rate: float, seconds: float, pids: list[int]) -> Step:
    global STEP_COUNTER
    STEP_COUNTER += 1
    step = Step(rate=rate, index=STEP_COUNTER)
    target.current = step
    pairs = target.pairs
    interval = len(pairs) / rate  # each pair sends every `interval` seconds, alternating sides
    loop = asyncio.get_running_loop()
    cpu0, t0 = cpu_of(pids), loop.time()
    own0, (busy0, total0) = time.process_time(), machine_jiffies()
    steal_watch = bench_machine.StealWatch()
    end = t0 + seconds

    async def drive(pair: Pair, offset: float) -> None:
        n = {"v": 0, "a": 0}
        turn = "v" if pair.index % 2 == 0 else "a"
        next_at = t0 + offset
        while next_at < end:
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            key = (turn, step.index, n[turn])
            pair.sent_at[key] = time.perf_counter()
            step.sent += 1
            await (pair.send_v if turn == "v" else pair.send_a)(f"m {turn} {step.index} {n[turn]}")
            n[turn] += 1
            turn = "a" if turn == "v" else "v"
            next_at += interval

    await asyncio.gather(*(drive(p, interval * p.index / len(pairs)) for p in pairs))
    step.send_seconds = loop.time() - t0
    # Let the last messages arrive; anything still missing after this counts as lost.
    deadline = loop.time() + 5
    while step.delivered + step.duplicates < step.sent and loop.time() < deadline:
        await asyncio.sleep(0.05)
    step.wall_seconds = loop.time() - t0
    step.cpu_seconds = cpu_of(pids) - cpu0
    step.generator_cpu_seconds = time.process_time() - own0
    busy1, total1 = machine_jiffies()
    step.machine_busy = (busy1 - busy0) / max(1, total1 - total0)
    step.steal, step.steal_peak = await steal_watch.stop()
    target.current = None
    for pair in pairs:
        pair.sent_at.clear()
    return step


async def settle(pids: list[int], *, below: float = 0.15, timeout: float = 60) -> None:
    """Wait until the servers are (nearly) idle again: a backlog would spoil the next step."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        before = cpu_of(pids)
        await asyncio.sleep(1)
        if cpu_of(pids) - before < below * len(pids):
            return


async def rate_search(target: ChatTarget, args: argparse.Namespace, pids: list[int], name: str) -> list[Step]:
    """Ramp up by `--factor` until a step fails, then bisect `--refine` times between the last
    passing and the first failing rate. Returns every step in the order run."""
    steps: list[Step] = []

    async def measure(rate: float) -> Step:
        step = await run_step(target, rate, args.seconds, pids)
        steps.append(step)
        print(f"  {name} {step.line()}", flush=True)
        await settle(pids)
        return step

    rate, good, bad = args.start_rate, None, None
    while rate <= args.max_rate:
        if (await measure(rate)).ok:
            good, rate = rate, rate * args.factor
        else:
            bad = rate
            break
    if good is None and bad is not None:  # even the first rate failed: look below it
        lo = args.start_rate / args.factor**3
        while lo < bad and not (await measure(lo)).ok:
            bad, lo = lo, lo / args.factor
            if lo < 5:
                return steps
        good = lo
    if good is not None and bad is not None:
        for _ in range(args.refine):
            mid = round((good + bad) / 2, -1)
            if mid in (good, bad):
                break
            if (await measure(mid)).ok:
                good = mid
            else:
                bad = mid
    return steps


async def hold_idle_sockets(servers: list[serverprocs.DaphneServer], count: int, seconds: float, relay: bool) -> dict:
    """Open `count` idle visitor sockets (hello, then the protocol's ping every 20 s, spread
    evenly), hold them `seconds`, and report memory per socket and heartbeat round trips."""
    pids = [s.pid for s in servers]
    await settle(pids)
    before = rss_kb(pids)
    sockets: list[ClientConnection] = []
    failures: dict[str, int] = {}
    pongs: list[float] = []
    loop = asyncio.get_running_loop()
    t_open = loop.time()

    async def one(i: int) -> None:
        server = servers[i % len(servers)]
        path = f"/ws/relay/{10**6 + i}/a/" if relay else "/ws/visitor/"
        ws = None
        try:
            ws = await connect(server.ws_url(path), origin=server.base_url, open_timeout=60,
                               ping_interval=None, max_queue=4)
            if not relay:
                await ws.send('{"type": "hello", "token": null}')
                await asyncio.wait_for(ws.recv(), 60)
        except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
            if ws is not None:  # opened but no welcome in time: not counted, so not kept open
                with contextlib.suppress(Exception):
                    await ws.close()
            return
        sockets.append(ws)

    for start in range(0, count, 100):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 100))))
    open_seconds = loop.time() - t_open
    opened = len(sockets)

    async def heartbeat(ws: ClientConnection, offset: float) -> None:
        with contextlib.suppress(Exception):
            await asyncio.sleep(offset)
            while True:
                sent = time.perf_counter()
                await ws.send('{"type": "ping"}')
                if not relay:
                    await ws.recv()  # the pong: nothing else is sent to an idle visitor
                    pongs.append((time.perf_counter() - sent) * 1000)
                await asyncio.sleep(20)

    tasks = [asyncio.create_task(heartbeat(ws, 20 * i / max(1, opened))) for i, ws in enumerate(sockets)]
    cpu0 = cpu_of(pids)
    await asyncio.sleep(seconds)
    cpu = cpu_of(pids) - cpu0
    alive = sum(1 for ws in sockets if ws.state.name == "OPEN")
    after = rss_kb(pids)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    pongs.sort()
    return {
        "requested": count,
        "opened": opened,
        "open_seconds": open_seconds,
        "alive_after_hold": alive,
        "failures": failures,
        "kb_per_socket": (after - before) / opened if opened else float("nan"),
        "rss_mb_before": before / 1024,
        "rss_mb_after": after / 1024,
        "cpu_percent": 100 * cpu / seconds,
        "pongs": len(pongs),
        "pong_p99_ms": pongs[int(0.99 * len(pongs))] if pongs else float("nan"),
    }


async def profile_step(target: ChatTarget, args: argparse.Namespace, pids: list[int], name: str) -> None:
    """One step at --profile-rate with py-spy sampling the first server process (--profile)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out = serverprocs.artifact_path(f"profile-{name}", ".txt")
    spy = await asyncio.create_subprocess_exec(
        py_spy, "record", "--pid", str(pids[0]), "--duration", str(int(args.seconds)), "--rate", "200",
        "--format", "raw", "--output", str(out), "--threads", "--nonblocking", *(["--gil"] if args.profile_cpu else []),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    step = await run_step(target, args.profile_rate, args.seconds, pids)
    await spy.wait()
    print(f"  {name} {step.line()}\n  server CPU per message {1000 * step.cpu_seconds / max(1, step.delivered):.2f} ms")
    print_profile(out)


def print_profile(path: Path, top: int = 40) -> None:
    """Own and total samples per function from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        samples += n
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            total[f] = total.get(f, 0) + n
    print(f"  profile {path} ({samples} samples)\n  -- own --")
    for f, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * n / samples:5.1f}%  {f[:150]}")
    print("  -- total --")
    for f, n in sorted(total.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * n / samples:5.1f}%  {f[:150]}")


# --- running a target -----------------------------------------------------------------------------


STOCK_LAYER = "channels_redis.pubsub.RedisPubSubChannelLayer"


def target_env(name: str, data_dir: Path, redis_url: str, database: str, secret: str) -> dict[str, str]:
    common = {
        "COACHLINE_DATA_DIR": str(data_dir),
        "SECRET_KEY": secret,
        # The per-visitor limit (30 a minute) still runs its count query on every message, but
        # a benchmark pair sends faster than a person types, so it must not refuse them.
        "CHAT_VISITOR_MESSAGES_PER_MINUTE": "1000000",
        "LOG_LEVEL": "WARNING",
        # Agents' sessions are made at set-up; a long idle-socket hold must not expire them.
        "STAFF_IDLE_TIMEOUT_SECONDS": "86400",
    }
    if name.startswith("embedded"):
        return serverprocs.child_env(common, unset=("DATABASE_URL", "REDIS_URL", "CHANNEL_LAYER_BACKEND"))
    env = {**common, "DATABASE_URL": f"{PG}/{database}", "REDIS_URL": redis_url,
           "CHANNEL_LAYER_PREFIX": f"bench-{uuid.uuid4().hex[:8]}"}
    if name.startswith("relay"):
        # The baseline is the bare stack: channels-redis' own pub/sub layer, not the project's
        # pipelined one (chat/redis_layer.py), which is part of what is measured. A variant can
        # still give the relay the project's layer: relay1@CHANNEL_LAYER_BACKEND=...
        env["CHANNEL_LAYER_BACKEND"] = STOCK_LAYER
    return serverprocs.child_env(env, unset=("CHANNEL_LAYER_BACKEND",))


async def run_target(name: str, args: argparse.Namespace, redis_url: str, idle_sockets: int) -> dict:
    # A variant sets server environment after "@": real1@CHAT_MESSAGE_DB_THREADS=0 (A+B=1+C=2).
    base, _, variant = name.partition("@")
    relay = base.startswith("relay")
    processes = int(base[-1]) if base[-1].isdigit() else 1
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower())
    if len(slug) > 24:  # PostgreSQL cuts names at 63 bytes; a long variant would collide
        slug = f"{slug[:15]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    database = f"{TEMPLATE_DB}_{slug}_{os.getpid()}"
    secret = "bench-" + uuid.uuid4().hex
    with tempfile.TemporaryDirectory(prefix="coachline-bench-") as tmp:
        workdir = Path(tmp)
        env = target_env(base, workdir / "data", redis_url, database, secret)
        env.update(kv.split("=", 1) for kv in variant.split("+") if kv)
        servers: list[serverprocs.DaphneServer] = []
        created_db = False
        try:
            cookies: list[str] = []
            if not relay:
                if not name.startswith("embedded"):
                    psql(f"CREATE DATABASE {database} TEMPLATE {TEMPLATE_DB}")
                    created_db = True
                out = workdir / "cookies.json"
                subprocess.run([sys.executable, __file__, "--setup", str(args.agents), "--out", str(out)],  # noqa: ASYNC221 - before any socket is open
                               env=env, check=True, cwd=ROOT)
                cookies = json.loads(out.read_text())
            application = "bench.relay_asgi:application" if relay else serverprocs.ASGI_APPLICATION
            servers = serverprocs.start_servers(processes, env=env, name=f"bench-{name}", application=application)
            pids = [s.pid for s in servers]
            idle = None
            if idle_sockets:
                idle = await hold_idle_sockets(servers, idle_sockets, args.idle_seconds, relay)
                print(f"  {name} idle: {idle['opened']}/{idle['requested']} opened in {idle['open_seconds']:.0f} s, "
                      f"{idle['alive_after_hold']} alive after {args.idle_seconds:g} s, "
                      f"{idle['kb_per_socket']:.1f} KB per socket, heartbeat p99 {idle['pong_p99_ms']:.0f} ms, "
                      f"server cpu {idle['cpu_percent']:.0f}%", flush=True)
                # Fresh processes for the rate search: closing 10,000 sockets leaves each project
                # process a minute or more of disconnect work (seen on a quiet machine: the first
                # step then lost 965 messages), which would be measured as the message path.
                serverprocs.stop_all(servers)
                servers = serverprocs.start_servers(processes, env=env, name=f"bench-{name}", application=application)
                pids = [s.pid for s in servers]
            target = (RelayTarget if relay else ChatTarget)(servers, cookies)
            await target.open(args.pairs)
            await run_step(target, args.start_rate / 2, 2.0, pids)  # warm-up, not reported
            await settle(pids)
            if args.profile:
                await profile_step(target, args, pids, name)
                return {"name": name, "processes": processes, "steps": [], "best": None, "idle": None,
                        "load": loadavg()}
            steps = await rate_search(target, args, pids, name)
            await target.close()
        finally:
            serverprocs.stop_all(servers)
            if created_db:
                with contextlib.suppress(subprocess.CalledProcessError):
                    psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    best = max((s for s in steps if s.ok), key=lambda s: s.rate, default=None)
    print(f"  {name}: best {best.rate if best else 'none':} msgs/s, load average {loadavg():.1f}", flush=True)
    return {"name": name, "processes": processes, "steps": steps, "best": best, "idle": idle, "load": loadavg()}


# --- report ---------------------------------------------------------------------------------------


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    """median (min–max) of the runs, or the one value."""
    if not values:
        return "–"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def cpu_ms_per_message(result: dict) -> float:
    """Server CPU per delivered message over every passing step: less sensitive to other load on
    the machine than rates and latencies (it does not count time spent waiting for a core)."""
    steps = [s for s in result["steps"] if s.ok]
    delivered = sum(s.delivered for s in steps)
    return 1000 * sum(s.cpu_seconds for s in steps) / delivered if delivered else float("nan")


def baseline_of(name: str) -> str:
    return "relay2" if name.partition("@")[0].endswith("2") else "relay1"


def report(runs: list[dict[str, dict]], args: argparse.Namespace, meta: dict) -> str:
    names = list(runs[0])
    command = " ".join(["bench/load.py", *sys.argv[1:]])
    loads = [r["load"] for run in runs for r in run.values()]
    lines = [
        (f"Run {meta['date']} on {meta['cores']} cores ({meta['cpu']}), Python {meta['python']}, generator on "
        f"the same machine; load average {meta['load_start']:.1f} at the start, {min(loads):.1f}–{max(loads):.1f} "
        f"after each target. Command: `.venv/bin/python {command}` ({len(runs)} run{'s' if len(runs) > 1 else ''}, "
        f"{args.pairs} pairs, {args.seconds:g} s steps). Figures are the median (min–max) over the runs; "
        "ratios are taken within each run, then the median."),
        "",
        (f"**Highest total rate (messages/s, half each way) at which p99 < {P99_LIMIT_MS:.0f} ms with nothing lost, "
        "duplicated, out of order or refused.** Every project message is persisted (committed) before it is "
        "broadcast; the relay persists nothing. Latencies and counts are those of the best step of the median run."),
        "",
        ("| target | processes | best rate | × baseline (same run) | latency p50 / p95 / p99 / max (ms) "
        "| delivered/s | lost / dup / out of order | server CPU (% of one core) | server CPU per message |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ratios: dict[str, list[float]] = {}
    for name in names:
        rates = [run[name]["best"].rate if run[name]["best"] else 0.0 for run in runs]
        base = baseline_of(name)
        ratio_text = "baseline" if name.startswith("relay") else "–"
        if not name.startswith("relay") and all(base in run for run in runs):
            ratios[name] = [
                (run[name]["best"].rate if run[name]["best"] else 0.0) / run[base]["best"].rate
                for run in runs if run[base]["best"]
            ]
            ratio_text = f"{spread(ratios[name], '{:.2f}')}× {base}" if ratios[name] else "–"
        median_run = sorted(runs, key=lambda run: run[name]["best"].rate if run[name]["best"] else 0)[len(runs) // 2]
        s = median_run[name]["best"]
        processes = median_run[name]["processes"]
        if s is None:
            lines.append(f"| {name} | {processes} | none passed | {ratio_text} | – | – | – | – | – |")
            continue
        lines.append(
            f"| {name} | {processes} | {spread(rates)} | {ratio_text} | {s.pct(.5):.1f} / {s.pct(.95):.1f} / "
            f"{s.pct(.99):.1f} / {max(s.latencies_ms):.1f} | {s.delivered / s.send_seconds:.0f} | "
            f"{s.lost} / {s.duplicates} / {s.out_of_order} | {100 * s.cpu_seconds / s.wall_seconds:.0f}% | "
            f"{spread([cpu_ms_per_message(run[name]) for run in runs], '{:.2f}')} ms |"
        )
    scale = {}
    for a, b in (("real2", "real1"), ("relay2", "relay1")):
        if a in names and b in names:
            scale[a] = [run[a]["best"].rate / run[b]["best"].rate for run in runs if run[a]["best"] and run[b]["best"]]
    if scale:
        lines += ["", "Two processes against one, same run: " + "; ".join(
            f"{a} / {a[:-1]}1 = {spread(v, '{:.2f}')}×" if v else f"{a} / {a[:-1]}1: not both passed a rate"
            for a, v in scale.items()) + "."]
    idle = [(name, runs[0][name]["idle"]) for name in names if runs[0][name]["idle"]]
    if idle:
        lines += ["", (f"**Idle sockets held {args.idle_seconds:g} s**, each visitor socket sending `ping` every 20 s "
                  "(the project's sockets also sent `hello` and got `welcome`, so each is a visitor row and a group "
                  "member); memory is the growth of the server processes' RSS divided by the sockets opened (first run)."),
                  "", "| target | requested | opened (time) | alive after hold | memory per socket | heartbeat p99 | server CPU |",
                  "|---|---|---|---|---|---|---|"]
        for name, i in idle:
            failed = ", ".join(f"{k} {v}" for k, v in i["failures"].items())
            lines.append(
                f"| {name} | {i['requested']:,} | {i['opened']:,} ({i['open_seconds']:.0f} s){' — failed: ' + failed if failed else ''} "
                f"| {i['alive_after_hold']:,} | {i['kb_per_socket']:.1f} KB | "
                f"{'–' if name.startswith('relay') else format(i['pong_p99_ms'], '.0f') + ' ms'} | {i['cpu_percent']:.0f}% |")
    checks = targets_met(runs, ratios, scale, idle, args)
    if checks:
        lines += ["", "Targets (real mode, one process unless said):", ""] + [f"- {c}" for c in checks]
    lines += ["", "<details><summary>Every step of every run</summary>", "",
              ("| run | target | offered rate | sent/s | p50 | p95 | p99 | max | lost | dup | ooo | errors | server CPU "
               "| generator CPU | machine busy | steal (worst 0.2 s) | passed |"),
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, run in enumerate(runs, start=1):
        for name in names:
            for s in run[name]["steps"]:
                errors = ", ".join(f"{k} {v}" for k, v in s.errors.items()) or "–"
                lines.append(
                    f"| {n} | {name} | {s.rate:.0f} | {s.achieved:.0f} | {s.pct(.5):.1f} | {s.pct(.95):.1f} | "
                    f"{s.pct(.99):.1f} | {max(s.latencies_ms, default=float('nan')):.1f} | {s.lost} | {s.duplicates} | "
                    f"{s.out_of_order} | {errors} | {100 * s.cpu_seconds / s.wall_seconds:.0f}% | "
                    f"{100 * s.generator_cpu_seconds / s.wall_seconds:.0f}% | {100 * s.machine_busy:.0f}% | "
                    f"{100 * s.steal:.0f}% ({100 * s.steal_peak:.0f}%) | {'yes' if s.ok else 'no'} |")
    lines += ["", "</details>"]
    return "\n".join(lines)


def targets_met(runs, ratios, scale, idle, args) -> list[str]:
    out = []

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**MISSED**"

    idle_real = dict(idle).get("real1")
    if idle_real:
        ok = idle_real["alive_after_hold"] >= 10_000 and idle_real["kb_per_socket"] < 50
        out.append(f"10,000 sockets held {args.idle_seconds:g} s at < 50 KB each: {verdict(ok)} "
                   f"({idle_real['alive_after_hold']:,} alive, {idle_real['kb_per_socket']:.1f} KB)")
    if all("real1" in run for run in runs):
        rates = [run["real1"]["best"].rate if run["real1"]["best"] else 0 for run in runs]
        out.append(f">= 500 persisted messages/s at p99 < 100 ms, nothing lost: {verdict(statistics.median(rates) >= 500)} "
                   f"({spread(rates)})")
    if ratios.get("real1"):
        out.append(f">= 0.6× the bare relay of the same run: {verdict(statistics.median(ratios['real1']) >= 0.6)} "
                   f"({spread(ratios['real1'], '{:.2f}')}×)")
    if scale.get("real2"):
        out.append(f"two processes >= 1.6× one: {verdict(statistics.median(scale['real2']) >= 1.6)} "
                   f"({spread(scale['real2'], '{:.2f}')}×)")
    return out


def write_docs(text: str) -> None:
    docs_block.write_block("load", text, heading="## WebSocket load")


# --- main -----------------------------------------------------------------------------------------


def raise_fd_limit(needed: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        sys.exit(f"RLIMIT_NOFILE hard limit is {hard}, {needed} are needed: raise it (ulimit -Hn, "
                 "/etc/security/limits.conf or LimitNOFILE=) or pass a smaller --idle-sockets.")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def drop_leftover_databases() -> None:
    with contextlib.suppress(Exception):
        out = subprocess.run(["psql", f"{PG}/postgres", "-tAc",
                              f"SELECT datname FROM pg_database WHERE datname LIKE '{TEMPLATE_DB}\\_%\\_{os.getpid()}'"],
                             capture_output=True, text=True, timeout=30, check=False).stdout
        for name in out.split():
            psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the same clean-up as Ctrl-C: finally blocks, then serverprocs' atexit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="relay1,real1,relay2,real2,embedded")
    parser.add_argument("--runs", type=int, default=2, help="repeat the rate searches; the spread is reported")
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--start-rate", type=float, default=200)
    parser.add_argument("--max-rate", type=float, default=5000)
    parser.add_argument("--factor", type=float, default=1.5)
    parser.add_argument("--refine", type=int, default=2, help="bisection steps after the first failure")
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--idle-sockets", type=int, default=10_000)
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--idle-targets", default="relay1,real1")
    parser.add_argument("--quick", action="store_true", help="small and short; prints, writes nothing")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the search: one step at --profile-rate under py-spy; prints the profile")
    parser.add_argument("--profile-rate", type=float, default=100)
    parser.add_argument("--profile-cpu", action="store_true",
                        help="sample only the thread holding the GIL: where the CPU goes, not the waits")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--setup", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup is not None:
        setup_main(args.setup, args.out)
        return
    if args.quick:
        args.runs, args.pairs, args.agents, args.seconds, args.refine = 1, 20, 2, 3, 0
        args.start_rate, args.max_rate = 100, 400
        args.idle_sockets, args.idle_seconds, args.no_write = 300, 5, True
    if args.profile:
        args.runs, args.idle_sockets, args.no_write = 1, 0, True
    raise_fd_limit(args.idle_sockets + 4 * args.pairs + 1000)
    signal.signal(signal.SIGTERM, on_sigterm)
    names = args.targets.split(",")
    meta = {**machine(), "date": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC", "load_start": loadavg()}
    print(f"{meta['cores']} cores ({meta['cpu']}), load average {meta['load_start']:.1f}", flush=True)
    redis = None
    try:
        redis, redis_url = start_redis()
        if any(not n.startswith(("relay", "embedded")) for n in names):
            migrate_template(serverprocs.child_env({"SECRET_KEY": "bench", "REDIS_URL": redis_url}))
        runs: list[dict[str, dict]] = []
        for n in range(args.runs):
            run: dict[str, dict] = {}
            for name in names:
                print(f"run {n + 1}/{args.runs}, {name}:", flush=True)
                idle = args.idle_sockets if n == 0 and name in args.idle_targets.split(",") else 0
                run[name] = asyncio.run(run_target(name, args, redis_url, idle))
                if n == 0 and name != names[-1]:
                    publish([run], args, meta, final=False)  # a long first run shows as it goes
            runs.append(run)
            # Written after every complete run, so an interrupted long run still leaves its figures.
            publish(runs, args, meta, final=n == args.runs - 1)
    except KeyboardInterrupt:
        print("\ninterrupted: every process started here is stopped, scratch databases dropped", flush=True)
        sys.exit(130)
    finally:
        if redis is not None:
            redis.stop()
        drop_leftover_databases()


def publish(runs: list[dict[str, dict]], args: argparse.Namespace, meta: dict, *, final: bool) -> None:
    dump = serverprocs.artifact_path("load-results", ".json")
    dump.write_text(json.dumps({"meta": meta, "args": {k: str(v) for k, v in vars(args).items()}, "runs": [
        {name: {**{k: v for k, v in r.items() if k not in ("steps", "best")},
                "best": r["best"].rate if r["best"] else None,
                "steps": [{**{k: v for k, v in vars(s).items() if k != "latencies_ms"}, "p50": s.pct(.5),
                           "p95": s.pct(.95), "p99": s.pct(.99), "max": max(s.latencies_ms, default=None),
                           "delivered": s.delivered, "ok": s.ok} for s in r["steps"]]}
         for name, r in run.items()} for run in runs]}, indent=1, default=str))
    text = report(runs, args, meta)
    if final:
        print("\n" + text)
    print(f"\nraw results: {dump}", flush=True)
    if not args.no_write:
        write_docs(text)
        print("written to docs/benchmarks.md", flush=True)


if __name__ == "__main__":
    main()
