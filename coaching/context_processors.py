"""`coaching_new_reviews` for the workspace's link to the coaching inbox.

A callable, so the count is asked for only by a template that shows it (the agent workspace),
not on every page.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from coaching.selectors import new_reviews_count


def coaching_inbox(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"coaching_new_reviews": lambda: new_reviews_count(user=user)}
