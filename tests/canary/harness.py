"""Leak canaries: unique strings planted where only staff may see them, and collectors of
everything a given audience can receive, so a test can say "this string never reached them".

The collectors are generic on purpose, so the suite grows with the product:
- every HTTP route is found by walking the URL conf (tests/test_http_bad_input.py's walk), and
  each path parameter is filled with the ids of the objects the scenario made;
- every e-mail is read from django.core.mail.outbox (subject, body, HTML alternatives,
  attachments, headers);
- every socket frame a client ever received is kept by `Recorder`.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from channels.testing import WebsocketCommunicator
from django.apps import apps
from django.core import mail
from django.db import models
from django.test import Client
from django.urls import get_resolver

from tests.test_http_bad_input import SKIP, _routes


def canary(where: str) -> str:
    """A string that cannot occur by chance, naming where it was planted."""
    return f"CANARY-{where}-{uuid.uuid4().hex[:12]}"


class Recorder:
    """Wraps a communicator and keeps every frame it ever receives."""

    def __init__(self, comm: WebsocketCommunicator, first: Iterable[dict[str, Any]] = ()) -> None:
        self.comm = comm
        self.frames: list[dict[str, Any]] = list(first)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.comm.send_json_to(frame)

    async def until(self, predicate, *, timeout: float = 5.0) -> dict[str, Any]:
        start = len(self.frames)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(
                    f"no matching frame; saw {json.dumps(self.frames[start:])[:3000]}"
                )
            try:
                frame = await self.comm.receive_json_from(timeout=remaining)
            except TimeoutError:
                raise AssertionError(
                    f"no matching frame; saw {json.dumps(self.frames[start:])[:3000]}"
                ) from None
            self.frames.append(frame)
            if predicate(frame):
                return frame

    async def settle(self, *, quiet: float = 0.2) -> list[dict[str, Any]]:
        """Every frame waiting, without the timed-out receive that cancels the application."""
        got = []
        while not await self.comm.receive_nothing(timeout=quiet):
            got.append(await self.comm.receive_json_from())
        self.frames.extend(got)
        return got

    def text(self) -> str:
        return json.dumps(self.frames, ensure_ascii=False)

    def conversation_ids(self) -> set[int]:
        """Every conversation id named anywhere in the frames received."""
        ids: set[int] = set()

        def walk(value: Any) -> None:
            if isinstance(value, dict):
                for key, inner in value.items():
                    if key == "conversation_id" and isinstance(inner, int):
                        ids.add(inner)
                    walk(inner)
            elif isinstance(value, list):
                for inner in value:
                    walk(inner)

        walk(self.frames)
        return ids


# --- e-mail ----------------------------------------------------------------------------------


def mail_text(message: Any) -> str:
    parts = [message.subject, message.body, json.dumps(message.extra_headers)]
    parts += [content for content, _ in getattr(message, "alternatives", [])]
    for attachment in message.attachments:
        content = attachment[1] if isinstance(attachment, tuple) else attachment.get_payload()
        parts.append(
            content.decode(errors="replace") if isinstance(content, bytes) else str(content)
        )
    return "\n".join(str(p) for p in parts)


def mails_to(addresses: Iterable[str]) -> list[Any]:
    wanted = {a.lower() for a in addresses}
    return [m for m in mail.outbox if wanted & {r.lower() for r in m.recipients()}]


# --- HTTP ------------------------------------------------------------------------------------

_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>|\(\?P<(\w+)>[^)]*\)")


def all_routes() -> list[str]:
    """Every routed path of the project, admin included (path() syntax or regex)."""
    routes = []
    for route, _ in _routes(get_resolver().url_patterns):
        if any(ch in route for ch in "*+[") and "(?P<" not in route:
            continue  # a free regex (static files, catch-alls)
        routes.append(route)
    return routes


def _fill(route: str, values: dict[str, Any]) -> Iterator[str]:
    """Every concrete path for the route: each parameter takes each value of its kind."""
    params = list(_PARAM.finditer(route))
    if not params:
        yield _clean(route)
        return

    def options(m: re.Match) -> list[str]:
        name = m.group(2) or m.group(3)
        if m.group(3) and "|" in m.group(0):  # admin's app_label alternation: each app
            body = m.group(0).split(">", 1)[1].rstrip(")")
            return body.split("|")
        if name == "app_label":
            return [a.label for a in apps.get_app_configs()]
        if name in values:
            return [str(v) for v in values[name]]
        return [str(v) for v in values["__int__"]]

    def expand(text: str, rest: list[re.Match]) -> Iterator[str]:
        if not rest:
            yield text
            return
        m = rest[0]
        for option in options(m):
            yield from expand(text.replace(m.group(0), option, 1), rest[1:])

    for path in expand(route, params):
        yield _clean(path)


def _clean(route: str) -> str:
    route = route.replace("^", "").replace("$", "").replace("\\", "")
    route = re.sub(r"\(\?:[^)]*\)\??", "", route)
    return "/" + route.lstrip("/")


_ADMIN_MODEL = re.compile(r"^admin/(\w+)/(\w+)/")


def _admin_pks(route: str, limit: int) -> list[int] | None:
    """For an admin route of one model: that model's own primary keys (newest first)."""
    m = _ADMIN_MODEL.match(route)
    if m is None:
        return None
    try:
        model = apps.get_model(m.group(1), m.group(2))
    except LookupError:
        return None
    return list(model._default_manager.order_by("-pk").values_list("pk", flat=True)[:limit])


def concrete_paths(ids: Iterable[int], *, admin_objects_per_model: int = 3) -> list[str]:
    """Every routed path with each parameter filled: admin object pages with that model's own
    rows, every other parameter with each of `ids` (the objects a scenario made)."""
    ids = sorted(set(ids)) or [1]
    paths: set[str] = set()
    for route in all_routes():
        own = _admin_pks(route, admin_objects_per_model)
        values = {"__int__": ids, "object_id": own if own is not None else ids}
        for path in _fill(route, values):
            if not SKIP.search(path):
                paths.add(path)
    return sorted(paths)


# Query strings that switch a page to another form of the same data (exports, drill-downs).
EXPORT_QUERIES = (
    "?format=csv",
    "?csv=daily",
    "?csv=agents",
    "?csv=hourly",
    "?download=1",
    "?all=1",
)


def _body(response: Any) -> str:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return content.decode("utf-8", errors="replace")


def walk_http(
    client: Client, ids: Iterable[int], *, extra: Iterable[str] = (), admin: bool = True
) -> dict[str, str]:
    """GET every routed path as `client` (and, outside the admin, its export forms);
    url -> body of every answer that is not a redirect. `admin=False` leaves the back office
    out (a superuser's walk covers every admin page another role could see)."""
    bodies: dict[str, str] = {}
    for path in [*concrete_paths(ids), *extra]:
        if not admin and path.startswith("/admin/"):
            continue
        response = client.get(path)
        if response.status_code in (301, 302, 303, 307, 308):
            continue
        bodies[path] = _body(response)
        if response.status_code != 200 or path.startswith("/admin/"):
            continue
        for query in EXPORT_QUERIES:
            response = client.get(path + query)
            if response.status_code == 200:
                bodies[path + query] = _body(response)
    return bodies


def leaks_in(texts: dict[str, str], secrets: Iterable[str]) -> list[str]:
    return [
        f"{secret} in {where}"
        for where, text in texts.items()
        for secret in secrets
        if secret in text
    ]


# --- the database ----------------------------------------------------------------------------


def database_text() -> dict[str, str]:
    """Every text-like column of every row of every model: 'app.Model#pk' -> the values."""
    found: dict[str, str] = {}
    for model in apps.get_models():
        fields = [
            f.attname
            for f in model._meta.concrete_fields
            if isinstance(
                f, models.CharField | models.TextField | models.JSONField | models.BinaryField
            )
        ]
        if not fields:
            continue
        for row in model._default_manager.all().values("pk", *fields).iterator():
            values = []
            for name in fields:
                value = row[name]
                if isinstance(value, bytes | memoryview):
                    value = bytes(value).decode("utf-8", errors="replace")
                values.append(value if isinstance(value, str) else json.dumps(value, default=str))
            found[f"{model._meta.label}#{row['pk']}"] = "\n".join(values)
    return found
