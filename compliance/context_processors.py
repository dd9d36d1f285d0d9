"""Template context the chat pages read: the content-safety switches (a data attribute)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def content_safety(request: HttpRequest) -> dict[str, Any]:
    from compliance.models import ContentSafetySettings

    def load() -> ContentSafetySettings:
        # Lazy: only the pages that use it pay the one query.
        return ContentSafetySettings.objects.filter(pk=1).first() or ContentSafetySettings(pk=1)

    return {"content_safety": SimpleLazyObject(load)}
