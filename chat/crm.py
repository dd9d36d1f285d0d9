"""Optional CRM lookup for the visitor panel: one HTTP GET, bounded by a timeout, cached briefly.

A CRM that is slow, down, answers non-2xx or sends something other than a JSON object gives
{"status": "unreachable"} with a reason; the agent's panel says so instead of waiting.
"""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from django.core.cache import cache

from chat.models import CrmLookup

log = logging.getLogger(__name__)

MAX_FIELDS = 30
MAX_BYTES = 64 * 1024
# A failure is remembered only shortly, so a CRM that comes back shows up again quickly.
FAILURE_CACHE_SECONDS = 10


def active_config() -> CrmLookup | None:
    return CrmLookup.objects.filter(enabled=True).order_by("pk").first()


def lookup(*, email: str, name: str) -> dict[str, Any]:
    config = active_config()
    if config is None:
        return {"status": "off"}
    if not email and not name:
        return {"status": "skipped", "reason": "The visitor gave no name or e-mail."}
    key = (
        "crm:"
        + hashlib.sha256(
            json.dumps([config.pk, config.url_template, config.api_key, email, name]).encode()
        ).hexdigest()
    )
    cached = cache.get(key)
    if cached is not None:
        return cached
    result = _fetch(config, email=email, name=name)
    ttl = (
        config.cache_seconds
        if result["status"] == "ok"
        else min(config.cache_seconds, FAILURE_CACHE_SECONDS)
    )
    if ttl:
        cache.set(key, result, ttl)
    return result


def _fetch(config: CrmLookup, *, email: str, name: str) -> dict[str, Any]:
    url = config.url_template.replace("{email}", urllib.parse.quote(email, safe="")).replace(
        "{name}", urllib.parse.quote(name, safe="")
    )
    if not url.startswith(("http://", "https://")):
        return {"status": "unreachable", "reason": "The CRM URL is not an http(s) URL."}
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if config.header_name and config.api_key:
        request.add_header(config.header_name, config.api_key)
    try:
        with urllib.request.urlopen(request, timeout=config.timeout_seconds) as response:
            raw = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        return {"status": "unreachable", "reason": f"The CRM answered HTTP {exc.code}."}
    except TimeoutError:
        return {"status": "unreachable", "reason": "The CRM did not answer in time."}
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            return {"status": "unreachable", "reason": "The CRM did not answer in time."}
        log.warning("CRM lookup failed: %s", reason)
        return {"status": "unreachable", "reason": "The CRM could not be reached."}
    if len(raw) > MAX_BYTES:
        return {"status": "unreachable", "reason": "The CRM answer is too large."}
    try:
        data = json.loads(raw)
    except ValueError:
        return {"status": "unreachable", "reason": "The CRM answer is not valid JSON."}
    if not isinstance(data, dict):
        return {"status": "unreachable", "reason": "The CRM answer is not a JSON object."}
    fields = {}
    for field_name, value in list(data.items())[:MAX_FIELDS]:
        if isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False)
        fields[str(field_name)[:100]] = "" if value is None else str(value)[:500]
    return {"status": "ok", "fields": fields}
