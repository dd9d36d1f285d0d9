"""How tests log staff in: one place, so every test follows the real login requirements.

Tests never call `Client.force_login` for staff themselves; they use these helpers, which give a
session exactly as a real staff login would (the second factor included, once required).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.test import Client


def _user(user_or_username: Any) -> Any:
    if isinstance(user_or_username, str):
        return get_user_model().objects.get(username=user_or_username)
    return user_or_username


def staff_client(user_or_username: Any, *, client: Client | None = None) -> Client:
    """A test client with a fully logged-in staff session for this user."""
    client = client or Client()
    client.force_login(_user(user_or_username))
    return client


def staff_session_cookie(user_or_username: Any) -> str:
    """`sessionid=...` for a fully logged-in staff session, for sockets and other processes."""
    client = staff_client(user_or_username)
    return f"sessionid={client.cookies['sessionid'].value}"


async def log_in_browser(page: Any, *, username: str, password: str, next_path: str) -> None:
    """Log in through the real login page of the browser test server, then land on next_path."""
    from playwright.async_api import expect

    await page.goto(next_path)
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(next_path)
