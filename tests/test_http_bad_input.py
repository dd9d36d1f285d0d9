"""Every HTTP endpoint, found by walking the URL conf, answers bad input with 4xx, never 500.

New endpoints are covered as soon as they are routed: the walk substitutes values for every path
parameter (a real object's id, a missing one, garbage), and each URL is hit, as an anonymous
visitor and as a superuser, with a GET carrying nonsense query parameters, a form POST of wrong
types, a JSON body that is not what any form expects, and a body over the upload limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.auth import staff_client
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# Endpoints whose whole point is something other than answering: logging out ends the session
# the rest of the walk uses.
SKIP = re.compile(r"(^|/)logout/?$")
GARBAGE_QUERY = {"o": "zzz", "p": "-1", "q": "\x00" * 3, "page": "NaN", "from": "2026-13-45", "to": "x" * 500,
                 "department": "'; DROP TABLE", "e": "1", "all": "[]"}
GARBAGE_FORM = {"name": ["a", "b"], "email": "not-an-email", "id": "-1", "conversation_id": "1e9999", "rating": "6",
                "body": "\x00", "status": "<script>", "csrfmiddlewaretoken": "x", "_save": "1", "file": "nope"}


def _routes(patterns, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


def _fill(route: str, value: str) -> str:
    """Turn a route (path() syntax or a regex) into a concrete path with `value` in every parameter."""
    def group(m: re.Match) -> str:
        body = m.group(1)
        # An alternation of names (the admin's app_label) takes its first name, so the URL resolves.
        return body.split("|")[0] if re.fullmatch(r"[\w|]+", body) else value

    route = re.sub(r"\(\?P<\w+>([^)]*)\)", group, route)
    route = re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: value if (m.group(1) in (None, "str", "slug", "path") or value.isdigit()) else "1", route)
    route = route.replace("^", "").replace("$", "").replace("\\", "")
    route = re.sub(r"\(\?:[^)]*\)\??", "", route)
    return "/" + route.lstrip("/")


def concrete_urls() -> list[str]:
    urls = set()
    for route, _ in _routes(get_resolver().url_patterns):
        if any(ch in route for ch in "*+[") and "(?P<" not in route:
            continue  # a free regex (static files, catch-alls): nothing of ours to reach
        for value in ("1", "999999", "0", "x%00y"):
            url = _fill(route, value)
            if not SKIP.search(url):
                urls.add(url)
    return sorted(urls)


def _hit_everything(client: Client) -> list[str]:
    problems = []
    too_big = b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024)
    for url in concrete_urls():
        attempts = [
            ("GET", lambda url=url: client.get(url, GARBAGE_QUERY)),
            ("POST form", lambda url=url: client.post(url, GARBAGE_FORM)),
            ("POST json", lambda url=url: client.post(url, b'{"a": [1, {"b": null}]', content_type="application/json")),
            ("POST too big", lambda url=url: client.post(url, too_big, content_type="application/x-www-form-urlencoded")),
        ]
        for name, attempt in attempts:
            response = attempt()
            if response.status_code >= 500:
                problems.append(f"{name} {url} -> {response.status_code}")
    return problems


def test_the_walk_finds_the_endpoints_users_have():
    urls = concrete_urls()
    for expected in ("/chat/", "/agent/", "/healthz", "/readyz", "/admin/", "/accounts/login/"):
        assert expected in urls
    assert any(u.startswith("/admin/chat/conversation/") for u in urls)


def test_anonymous_bad_input_never_gets_a_server_error(department):
    client = Client(raise_request_exception=False)
    assert _hit_everything(client) == []


def test_superuser_bad_input_never_gets_a_server_error(department, agent):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = staff_client(admin, client=Client(raise_request_exception=False))
    assert _hit_everything(client) == []
