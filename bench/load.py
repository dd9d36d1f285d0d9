"""WebSocket load benchmark: message latency, loss, throughput and memory per socket.

    .venv/bin/python bench/load.py                 # the full table, written to docs/benchmarks.md
    .venv/bin/python bench/load.py --quick         # a small smoke run (seconds), printed only
    .venv/bin/python bench/load.py --targets real1,relay1 --rates 200,400 --pairs 100

A load generator in one asyncio process, with the `websockets` client library, speaking the
protocol of docs/protocol.md: N visitor/agent pairs (each visitor starts a chat, an agent accepts
it) exchange messages at a set total rate, alternating direction. For every message it measures
the time from send to delivery on the other side, and counts lost, duplicated and out-of-order
deliveries (there must be none). A rate sweep finds the highest rate at which p99 stays under
100 ms with nothing lost. Then it holds many idle visitor sockets with heartbeats and reports the
server processes' memory per open socket; CPU is read from /proc for every step.

Targets (each on fresh server processes started here; the machine's PostgreSQL and Redis are used
but in a scratch database and a Redis db of their own):
  embedded  the embedded default: SQLite, in-memory channel layer, one daphne process
  real1     real mode: PostgreSQL + channels-redis, one daphne process
  real2     real mode, two daphne processes behind no balancer: clients alternate between them
  relay1    the BASELINE: a bare Channels pair-relay consumer (bench/relay_asgi.py) on the same
            daphne and Redis layer, no database; the project's figures are given as a ratio to it
  relay2    the baseline on two processes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import resource
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

from tests import serverprocs  # noqa: E402

PG = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
BENCH_DB = "coachline_bench_load"
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
P99_LIMIT_MS = 100.0


# --- set-up of a target (runs in a child process with the target's environment) ------------------


def setup_main(agents: int, out: Path) -> None:
    """Migrate the scratch database, create a department and agents, write their session cookies."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    from chat.models import AgentProfile, Department
    from django.contrib.auth import get_user_model

    from tests.auth import staff_session_cookie

    department, _ = Department.objects.get_or_create(
        slug="bench", defaults={"name": "Bench", "accept_timeout_seconds": 600}
    )
    cookies = []
    for i in range(agents):
        user, _ = get_user_model().objects.get_or_create(username=f"bench-agent-{i}")
        profile, _ = AgentProfile.objects.get_or_create(
            user=user, defaults={"display_name": f"Bench Agent {i}", "max_chats": 1000}
        )
        profile.departments.add(department)
        cookies.append(staff_session_cookie(user))
    out.write_text(json.dumps(cookies))


# --- measurement ----------------------------------------------------------------------------------


@dataclass(eq=False)
class Step:
    rate: float
    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    duplicates: int = 0
    out_of_order: int = 0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0

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
    def ok(self) -> bool:
        return self.sent > 0 and self.lost == 0 and self.duplicates == 0 and self.out_of_order == 0 and (
            self.pct(0.99) < P99_LIMIT_MS
        )


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
        if key[1] != step_index(step):
            return
        now = time.perf_counter()
        if key in self.seen:
            step.duplicates += 1
            return
        self.seen.add(key)
        if key[2] != self.last.get(key[:2], -1) + 1:
            step.out_of_order += 1
        self.last[key[:2]] = key[2]
        step.latencies_ms.append((now - self.sent_at[key]) * 1000)


_steps: list[Step] = []
# Error frames the server sent, by code: a healthy run has none.
ERRORS: dict[str, int] = {}


def step_index(step: Step) -> int:
    return _steps.index(step)


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


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
                ERRORS[frame.get("code")] = ERRORS.get(frame.get("code"), 0) + 1
            if kind == "conversation" and not started.done():
                started.set_result(frame["conversation_id"])
            elif kind == "message" and frame.get("role") == "agent" and self.current is not None:
                pair.delivered(frame["body"], self.current)

    async def _agent_reader(self, ws: ClientConnection) -> None:
        async for raw in ws:
            frame = orjson.loads(raw)
            kind = frame.get("type")
            if kind == "error":
                ERRORS[frame.get("code")] = ERRORS.get(frame.get("code"), 0) + 1
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


# --- running a target -----------------------------------------------------------------------------


async def run_step(target: ChatTarget, rate: float, seconds: float, pids: list[int]) -> Step:
    step = Step(rate=rate)
    _steps.append(step)
    index = step_index(step)
    target.current = step
    pairs = target.pairs
    interval = len(pairs) / rate  # each pair sends every `interval` seconds, alternating sides
    loop = asyncio.get_running_loop()
    cpu0, t0 = cpu_of(pids), loop.time()
    end = t0 + seconds

    async def drive(pair: Pair, offset: float) -> None:
        n = {"v": 0, "a": 0}
        turn = "v" if pair.index % 2 == 0 else "a"
        next_at = t0 + offset
        while next_at < end:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            key = (turn, index, n[turn])
            pair.sent_at[key] = time.perf_counter()
            step.sent += 1
            await (pair.send_v if turn == "v" else pair.send_a)(f"m {turn} {index} {n[turn]}")
            n[turn] += 1
            turn = "a" if turn == "v" else "v"
            next_at += interval

    await asyncio.gather(*(drive(p, interval * p.index / len(pairs)) for p in pairs))
    # Let the last messages arrive; anything still missing after this counts as lost.
    deadline = loop.time() + 5
    while step.delivered + step.duplicates < step.sent and loop.time() < deadline:
        await asyncio.sleep(0.05)
    step.wall_seconds = loop.time() - t0
    step.cpu_seconds = cpu_of(pids) - cpu0
    target.current = None
    return step


async def hold_idle_sockets(servers: list[serverprocs.DaphneServer], count: int, seconds: float, relay: bool) -> dict:
    """Open `count` idle visitor sockets (hello, then a ping every 20 s); memory per socket."""
    pids = [s.pid for s in servers]
    before = rss_kb(pids)
    sockets: list[ClientConnection] = []
    failures = 0

    async def one(i: int) -> None:
        nonlocal failures
        server = servers[i % len(servers)]
        path = f"/ws/relay/{10**6 + i}/a/" if relay else "/ws/visitor/"
        try:
            ws = await connect(server.ws_url(path), origin=server.base_url, open_timeout=60, ping_interval=None)
        except Exception:  # noqa: BLE001 - counted and reported, the run goes on
            failures += 1
            return
        sockets.append(ws)
        if not relay:
            await ws.send('{"type": "hello", "token": null}')
            await ws.recv()

    for start in range(0, count, 200):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 200))))
    opened = len(sockets)

    async def heartbeat(ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(20)
                await ws.send('{"type": "ping"}')

    async def drain(ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            async for _ in ws:
                pass

    tasks = [asyncio.create_task(heartbeat(ws)) for ws in sockets] + [asyncio.create_task(drain(ws)) for ws in sockets]
    await asyncio.sleep(seconds)
    alive = sum(1 for ws in sockets if ws.state.name == "OPEN")
    after = rss_kb(pids)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {
        "requested": count,
        "opened": opened,
        "alive_after_hold": alive,
        "failures": failures,
        "kb_per_socket": (after - before) / opened if opened else float("nan"),
        "rss_mb_after": after / 1024,
    }


def target_env(name: str, data_dir: Path) -> dict[str, str]:
    if name.startswith("embedded"):
        return serverprocs.child_env({"COACHLINE_DATA_DIR": str(data_dir)}, unset=("DATABASE_URL", "REDIS_URL"))
    return serverprocs.child_env(
        {
            "DATABASE_URL": f"{PG}/{BENCH_DB}",
            "REDIS_URL": REDIS,
            "CHANNEL_LAYER_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
            "SECRET_KEY": "bench-" + uuid.uuid4().hex,
            "COACHLINE_DATA_DIR": str(data_dir),
        }
    )


def prepare_database(name: str, env: dict[str, str], agents: int, workdir: Path) -> list[str]:
    if not name.startswith("embedded"):
        subprocess.run(["psql", f"{PG}/postgres", "-qc", f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"], check=True)
        subprocess.run(["psql", f"{PG}/postgres", "-qc", f"CREATE DATABASE {BENCH_DB}"], check=True)
    out = workdir / "cookies.json"
    subprocess.run([sys.executable, __file__, "--setup", str(agents), "--out", str(out)], env=env, check=True, cwd=ROOT)
    return json.loads(out.read_text())


async def run_target(name: str, args: argparse.Namespace) -> dict:
    relay = name.startswith("relay")
    processes = int(name[-1]) if name[-1].isdigit() else 1
    with tempfile.TemporaryDirectory(prefix="coachline-bench-") as tmp:
        workdir = Path(tmp)
        env = target_env(name, workdir / "data")
        if relay:
            env = target_env("real", workdir / "data")
        cookies = [] if relay else prepare_database(name, env, args.agents, workdir)
        application = "bench.relay_asgi:application" if relay else serverprocs.ASGI_APPLICATION
        servers = serverprocs.start_servers(processes, env=env, name=f"bench-{name}", application=application)
        try:
            pids = [s.pid for s in servers]
            target = (RelayTarget if relay else ChatTarget)(servers, cookies)
            await target.open(args.pairs)
            await run_step(target, args.rates[0], min(2.0, args.seconds), pids)  # warm-up, not reported
            steps = []
            for rate in args.rates:
                step = await run_step(target, rate, args.seconds, pids)
                steps.append(step)
                print(f"  {name} {rate:>6.0f}/s: p50 {step.pct(.5):6.1f} p99 {step.pct(.99):7.1f} ms, "
                      f"lost {step.lost} dup {step.duplicates} ooo {step.out_of_order}, "
                      f"cpu {100 * step.cpu_seconds / step.wall_seconds:5.0f}%, errors {ERRORS or 'none'}", flush=True)
                if not step.ok and step.pct(0.99) > 4 * P99_LIMIT_MS:
                    break  # far past saturation: higher rates only queue up more
            await target.close()
            idle = await hold_idle_sockets(servers, args.idle_sockets, args.idle_seconds, relay) if args.idle_sockets else None
        finally:
            serverprocs.stop_all(servers)
    best = max((s for s in steps if s.ok), key=lambda s: s.rate, default=None)
    return {"name": name, "processes": processes, "steps": steps, "best": best, "idle": idle}


# --- report ---------------------------------------------------------------------------------------


def fmt_step(s: Step | None) -> str:
    if s is None:
        return "none met the target | – | – | – | –"
    return (f"{s.rate:.0f} | {s.pct(.5):.1f} / {s.pct(.95):.1f} / {s.pct(.99):.1f} / {max(s.latencies_ms):.1f} | "
            f"{s.delivered / s.wall_seconds:.0f} | {s.lost} / {s.duplicates} / {s.out_of_order} | "
            f"{100 * s.cpu_seconds / s.wall_seconds:.0f}%")


def report(results: list[dict], args: argparse.Namespace) -> str:
    by_name = {r["name"]: r for r in results}
    lines = [
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores, "
        f"Python {platform.python_version()}), generator on the same machine: `bench/load.py "
        f"--pairs {args.pairs} --rates {','.join(f'{r:.0f}' for r in args.rates)} --seconds {args.seconds:g} "
        f"--idle-sockets {args.idle_sockets}`.",
        "",
        f"Highest total rate (messages/s, half each way) at which p99 < {P99_LIMIT_MS:.0f} ms with nothing lost, "
        "duplicated or out of order:",
        "",
        "| target | processes | best rate | latency p50 / p95 / p99 / max (ms) | delivered/s | lost / dup / out of order | server CPU | × baseline |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        base = by_name.get(f"relay{r['processes']}")
        ratio = "–"
        if base and base is not r and base["best"] and r["best"]:
            ratio = f"{r['best'].rate / base['best'].rate:.2f}"
        lines.append(f"| {r['name']} | {r['processes']} | {fmt_step(r['best'])} | {ratio} |")
    if "real1" in by_name and "real2" in by_name and by_name["real1"]["best"] and by_name["real2"]["best"]:
        lines += ["", f"Two processes against one (real mode): {by_name['real2']['best'].rate / by_name['real1']['best'].rate:.2f}×."]
    idle = [r for r in results if r["idle"]]
    if idle:
        lines += ["", "Idle sockets held with heartbeats:", "",
                  "| target | requested | opened | alive after hold | server memory per socket |", "|---|---|---|---|---|"]
        for r in idle:
            i = r["idle"]
            lines.append(f"| {r['name']} | {i['requested']} | {i['opened']} | {i['alive_after_hold']} | {i['kb_per_socket']:.1f} KB |")
    lines += ["", "Every step of the sweep:", "", "| target | offered rate | p50 | p99 | lost | dup | ooo |", "|---|---|---|---|---|---|---|"]
    for r in results:
        for s in r["steps"]:
            lines.append(f"| {r['name']} | {s.rate:.0f} | {s.pct(.5):.1f} | {s.pct(.99):.1f} | {s.lost} | {s.duplicates} | {s.out_of_order} |")
    return "\n".join(lines)


def write_docs(text: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    doc = path.read_text()
    begin, end = "<!-- load:begin -->", "<!-- load:end -->"
    block = f"{begin}\n{text}\n{end}"
    if begin in doc:
        doc = doc[: doc.index(begin)] + block + doc[doc.index(end) + len(end):]
    else:
        doc += f"\n## WebSocket load\n\n{block}\n"
    path.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="relay1,real1,relay2,real2,embedded")
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--rates", default="100,200,300,400,500,600,800,1000,1200")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--idle-sockets", type=int, default=10_000)
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--quick", action="store_true", help="small and short; prints, writes nothing")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--setup", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup is not None:
        setup_main(args.setup, args.out)
        return
    if args.quick:
        args.pairs, args.agents, args.rates, args.seconds = 10, 2, "50,100", 3
        args.idle_sockets, args.idle_seconds, args.no_write = 200, 2, True
    args.rates = [float(r) for r in args.rates.split(",")]
    # 10,000 sockets need 10,000 file descriptors here and in the servers (they inherit it).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results = []
    for name in args.targets.split(","):
        print(f"{name}:", flush=True)
        results.append(asyncio.run(run_target(name, args)))
    text = report(results, args)
    print("\n" + text)
    if not args.no_write:
        write_docs(text)
        print("\nwritten to docs/benchmarks.md")


if __name__ == "__main__":
    main()
