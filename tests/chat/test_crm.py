"""The CRM lookup against a real HTTP server on loopback: answers, failures, timeouts, caching."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from django.core.cache import cache

from chat import crm
from chat.models import CrmLookup


class CrmHandler(BaseHTTPRequestHandler):
    # What the server answers, set by each test: (status, body bytes, delay seconds).
    answer: ClassVar[tuple[int, bytes, float]] = (200, b"{}", 0.0)
    requests: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        CrmHandler.requests.append((self.path, self.headers.get("X-Api-Key")))
        status, body, delay = CrmHandler.answer
        time.sleep(delay)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout test)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def crm_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), CrmHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    CrmHandler.requests = []
    cache.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def config(db, crm_server):
    return CrmLookup.objects.create(
        url_template=crm_server + "/customers?email={email}",
        header_name="X-Api-Key",
        api_key="s3cret",
        timeout_seconds=0.5,
        cache_seconds=60,
    )


def test_found_customer_fields_are_shown_and_cached(config):
    CrmHandler.answer = (
        200,
        json.dumps({"plan": "Gold", "orders": 12, "tags": ["vip"], "note": None}).encode(),
        0,
    )
    result = crm.lookup(email="vera+x@example.com", name="Vera")
    assert result == {
        "status": "ok",
        "fields": {"plan": "Gold", "orders": "12", "tags": '["vip"]', "note": ""},
    }
    assert CrmHandler.requests == [("/customers?email=vera%2Bx%40example.com", "s3cret")]
    assert crm.lookup(email="vera+x@example.com", name="Vera") == result
    assert len(CrmHandler.requests) == 1  # the second came from the cache


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ((500, b'{"error": "down"}', 0), "The CRM answered HTTP 500."),
        ((404, b"", 0), "The CRM answered HTTP 404."),
        ((200, b"<html>login</html>", 0), "The CRM answer is not valid JSON."),
        ((200, b"[1, 2]", 0), "The CRM answer is not a JSON object."),
        ((200, b"{}", 2.0), "The CRM did not answer in time."),
    ],
)
def test_failures_say_unreachable_quickly(config, answer, reason):
    CrmHandler.answer = answer
    started = time.monotonic()
    assert crm.lookup(email="vera@example.com", name="") == {
        "status": "unreachable",
        "reason": reason,
    }
    assert time.monotonic() - started < 1.5  # the timeout is 0.5 s: no hang


def test_nothing_listening_is_unreachable(db):
    CrmLookup.objects.create(url_template="http://127.0.0.1:9/x?e={email}", timeout_seconds=0.5)
    cache.clear()
    assert crm.lookup(email="a@example.com", name="") == {
        "status": "unreachable",
        "reason": "The CRM could not be reached.",
    }


def test_off_without_config_and_skipped_without_identity(db, config):
    assert crm.lookup(email="", name="") == {
        "status": "skipped",
        "reason": "The visitor gave no name or e-mail.",
    }
    config.enabled = False
    config.save(update_fields=["enabled"])
    assert crm.lookup(email="vera@example.com", name="") == {"status": "off"}
    assert CrmHandler.requests == []
