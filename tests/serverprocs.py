"""Real server processes for tests: daphne (and any other command) started, awaited and killed.

Used by the real-mode tests (two daphne processes sharing Redis and PostgreSQL, a Celery worker)
and by the browser tests. Every process writes its output to a log file under test-artifacts/
so a failure can be read after the run; the path is in the assertion messages.

    with running_servers(2, env=child_env({"DATABASE_URL": current_database_url()})) as (a, b):
        ... a.ws_url("/ws/visitor/") ...
        a.kill()  # SIGKILL, as a crash would

Processes are started in their own session and killed by process group, so children (Celery's
pool) go too. An atexit hook kills anything a crashed test left behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS_DIR = PROJECT_ROOT / "test-artifacts"
ASGI_APPLICATION = "config.asgi:application"
# The same limits `make run` serves with: frames over 64 KB are closed with 1009.
DAPHNE_FLAGS = ("--websocket-max-message-size", "65536", "--websocket-max-frame-size", "65536")

_alive: set[ManagedProcess] = set()


class ProcessFailed(RuntimeError):
    pass


class ManagedProcess:
    """One subprocess with its log file; `stop()` is graceful, `kill()` is a crash."""

    def __init__(
        self, *, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in _reap
        self._done = False
        self.proc = subprocess.Popen(
            self.argv,
            cwd=PROJECT_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _alive.add(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def is_running(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def describe(self) -> str:
        state = "running" if self.is_running() else f"exited with {self.proc.returncode}"
        return f"{self.name} (pid {self.pid}, {state}, log {self.log_path})"

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown handlers run, like a crashed server."""
        if self._done:
            return
        self._signal(signal.SIGKILL)
        self._reap(timeout=10)

    def stop(self, *, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL if it is still there after `timeout` seconds."""
        if self._done:
            return
        if self.is_running():
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
        self._reap(timeout=10)

    def _signal(self, sig: signal.Signals) -> None:
        # The group's id is the child's pid (start_new_session); it ends only what we started.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def _reap(self, *, timeout: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout)
        # Children of a killed leader may outlive it for a moment; make sure none stays behind.
        self._signal(signal.SIGKILL)
        self._log.close()
        # Never signal this group id again: once its members are gone the id may be reused.
        self._done = True
        _alive.discard(self)


class DaphneServer(ManagedProcess):
    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int,
        env: Mapping[str, str],
        log_path: Path,
        extra_args: Sequence[str] = (),
        application: str = ASGI_APPLICATION,
    ) -> None:
        self.host = host
        self.port = port
        argv = [
            sys.executable,
            "-m",
            "daphne",
            *DAPHNE_FLAGS,
            *extra_args,
            "-b",
            host,
            "-p",
            str(port),
            application,
        ]
        super().__init__(name=name, argv=argv, env=env, log_path=log_path)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def ws_url(self, path: str) -> str:
        return f"ws://{self.host}:{self.port}{path}"


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_alive):
        process.kill()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (another process may still take it: see start_servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def artifact_path(name: str, suffix: str = ".log") -> Path:
    """A fresh file under test-artifacts/, unique per process and call."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # A benchmark target's variant may hold a path (real1@PYTHONPATH=/x): one file, not a folder.
    safe = re.sub(r"[^A-Za-z0-9@=+._-]+", "_", name)
    return ARTIFACTS_DIR / f"{stamp}-{os.getpid()}-{time.monotonic_ns() % 10**9}-{safe}{suffix}"


def child_env(
    overrides: Mapping[str, str] | None = None, *, unset: Sequence[str] = ()
) -> dict[str, str]:
    """This process's environment with `overrides` applied; what every child should start from.

    DJANGO_SETTINGS_MODULE is left to config.asgi / config.celery; output is unbuffered so the
    log files are current when a test reads them.
    """
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(overrides or {})
    return env


def current_database_url() -> str:
    """A DATABASE_URL for the database the running test uses (pytest-django's test database).

    Call it inside a test that has database access (`transactional_db`), so the name is the
    test database's and not the one in the environment.
    """
    from urllib.parse import quote

    from django.db import connection

    sd = connection.settings_dict
    engine = sd["ENGINE"]
    if engine.endswith("postgresql"):
        auth = quote(sd.get("USER") or "", safe="")
        if sd.get("PASSWORD"):
            auth += ":" + quote(sd["PASSWORD"], safe="")
        host = sd.get("HOST") or "127.0.0.1"
        port = f":{sd['PORT']}" if sd.get("PORT") else ""
        return (
            f"postgres://{auth + '@' if auth else ''}{host}{port}/{quote(str(sd['NAME']), safe='')}"
        )
    if engine.endswith("sqlite3"):
        # config/settings.py gives a sqlite URL the embedded default's IMMEDIATE transactions.
        return f"sqlite:///{Path(str(sd['NAME'])).resolve()}"
    raise ValueError(f"test servers support PostgreSQL and SQLite, not {engine}")


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.1,
    process: ManagedProcess | None = None,
    what: str = "condition",
) -> None:
    """Poll `check` until true; fail early with the log if `process` dies meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if process is not None and not process.is_running():
            raise ProcessFailed(
                f"{process.describe()} died while waiting for {what}:\n{process.log_tail()}"
            )
        if time.monotonic() > deadline:
            detail = f"\n{process.describe()}:\n{process.log_tail()}" if process is not None else ""
            raise ProcessFailed(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


def http_ok(url: str, *, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def start_process(name: str, argv: Sequence[str], *, env: Mapping[str, str]) -> ManagedProcess:
    """Start any command from the project root with its output in test-artifacts/<...>-name.log."""
    return ManagedProcess(name=name, argv=argv, env=env, log_path=artifact_path(name))


def _launch(
    *,
    env: Mapping[str, str],
    name: str,
    host: str,
    extra_args: Sequence[str],
    application: str = ASGI_APPLICATION,
) -> DaphneServer:
    port = free_port(host)
    return DaphneServer(
        name=f"{name}-{port}",
        host=host,
        port=port,
        env=env,
        log_path=artifact_path(f"{name}-{port}"),
        extra_args=extra_args,
        application=application,
    )


def _await_healthy(server: DaphneServer, *, timeout: float) -> None:
    wait_until(
        lambda: http_ok(server.url("/healthz")),
        timeout=timeout,
        process=server,
        what=f"{server.url('/healthz')} to answer",
    )


def start_server(
    *,
    env: Mapping[str, str],
    name: str = "daphne",
    host: str = "127.0.0.1",
    extra_args: Sequence[str] = (),
    timeout: float = 30.0,
    attempts: int = 3,
) -> DaphneServer:
    """One daphne process of config.asgi:application on a free port, answering /healthz.

    `env` is the child's whole environment (build it with `child_env`). If another process takes
    the port between choosing and binding it, try again on another one.
    """
    return start_servers(
        1, env=env, name=name, host=host, extra_args=extra_args, timeout=timeout, attempts=attempts
    )[0]


def start_servers(
    count: int,
    *,
    env: Mapping[str, str],
    name: str = "daphne",
    host: str = "127.0.0.1",
    extra_args: Sequence[str] = (),
    timeout: float = 30.0,
    attempts: int = 3,
    application: str = ASGI_APPLICATION,
) -> list[DaphneServer]:
    """`count` daphne processes with the same environment, started side by side; all answer
    /healthz when this returns, or all are stopped and the first failure (with its log) raised."""
    servers: list[DaphneServer] = []
    try:
        servers = [
            _launch(env=env, name=f"{name}{i}", host=host, extra_args=extra_args, application=application)
            for i in range(count)
        ]
        for index, server in enumerate(servers):
            for attempt in range(attempts):
                try:
                    _await_healthy(server, timeout=timeout)
                    break
                except ProcessFailed:
                    server.stop()
                    lost_port = "Address already in use" in server.log_text()
                    if not lost_port or attempt == attempts - 1:
                        raise
                    server = servers[index] = _launch(
                        env=env,
                        name=f"{name}{index}",
                        host=host,
                        extra_args=extra_args,
                        application=application,
                    )
    except BaseException:
        stop_all(servers)
        raise
    return servers


def stop_all(processes: Sequence[ManagedProcess]) -> None:
    for process in processes:
        process.stop()


@contextlib.contextmanager
def running_servers(
    count: int, *, env: Mapping[str, str], **kwargs: object
) -> Iterator[list[DaphneServer]]:
    """start_servers for a `with` block or a yield fixture; stopped (or killed) at the end."""
    servers = start_servers(count, env=env, **kwargs)  # type: ignore[arg-type]
    try:
        yield servers
    finally:
        stop_all(servers)
