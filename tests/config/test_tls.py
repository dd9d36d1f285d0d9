"""daphne serves the app over TLS with a certificate and key from files, as README shows."""

from __future__ import annotations

import datetime
import ipaddress
import json
import shlex
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect

from tests import serverprocs
from tests.auth import staff_session_cookie
from tests.factories import AgentFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)
HOST = "127.0.0.1"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _make_serve_endpoint(*, cert: Path, key: Path, port: int) -> str:
    """The TLS endpoint `make serve` passes to daphne when TLS_CERT and TLS_KEY are set."""
    dry_run = subprocess.run(
        [
            "make",
            "-s",
            "-n",
            "serve",
            f"TLS_CERT={cert}",
            f"TLS_KEY={key}",
            f"TLS_PORT={port}",
            f"HOST={HOST}",
        ],
        cwd=serverprocs.PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    daphne = next(line for line in dry_run.stdout.splitlines() if "daphne" in line)
    argv = shlex.split(daphne)
    return argv[argv.index("-e") + 1]


@pytest.fixture
def tls_server(
    tmp_path: Path, department
) -> Iterator[tuple[serverprocs.DaphneServer, int, ssl.SSLContext, str]]:
    cert, key = _self_signed(tmp_path)
    agent = AgentFactory(
        user=UserFactory(username="alice"), display_name="Alice Agent", departments=[department]
    )
    cookie = staff_session_cookie(agent.user)
    tls_port = serverprocs.free_port(HOST)
    env = serverprocs.child_env(
        {
            "DATABASE_URL": serverprocs.current_database_url(),
            "ALLOWED_HOSTS": HOST,
            "COACHLINE_HTTPS": "true",
        }
    )
    endpoint = _make_serve_endpoint(cert=cert, key=key, port=tls_port)
    with serverprocs.running_servers(
        1, env=env, name="tls-daphne", extra_args=["-e", endpoint]
    ) as (server,):
        yield server, tls_port, ssl.create_default_context(cafile=str(cert)), cookie


async def test_pages_and_staff_sockets_over_tls(tls_server) -> None:
    server, port, context, cookie = tls_server
    with urllib.request.urlopen(  # noqa: ASYNC210 - the server is another process
        f"https://{HOST}:{port}/chat/", context=context, timeout=10
    ) as response:
        assert response.status == 200
        assert "Start chat" in response.read().decode()
        assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")

    # Plain HTTP is sent to HTTPS (only the health check stays reachable for load balancers).
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return None

    with pytest.raises(urllib.error.HTTPError) as redirect:
        urllib.request.build_opener(NoRedirect).open(server.url("/chat/"), timeout=10)
    assert redirect.value.code == 301
    assert redirect.value.headers["Location"].startswith("https://")

    async with connect(
        f"wss://{HOST}:{port}/ws/agent/",
        ssl=context,
        origin=f"https://{HOST}:{port}",
        additional_headers={"Cookie": cookie},
        open_timeout=10,
    ) as ws:
        state = json.loads(await ws.recv())
        assert state["type"] == "state"
