"""How tests log staff in: one place, so every test follows the real login requirements.

Tests never call `Client.force_login` for staff themselves; they use these helpers, which give a
session exactly as a real staff login would: `compliance.two_factor.complete_login`, the
function the login view calls after a correct code, run on the user's own confirmed TOTP device
(created here if the user has none). The browser helper goes through the real pages, password
step and code step, with a code computed from that device.
"""

from __future__ import annotations

import time
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from compliance import two_factor


def _password_backend() -> str:
    """The backend a password login records in the session: the configured ModelBackend
    (a session naming a backend that is not configured is no login at all)."""
    return next(b for b in settings.AUTHENTICATION_BACKENDS if b.endswith("ModelBackend"))


def _user(user_or_username: Any) -> Any:
    if isinstance(user_or_username, str):
        return get_user_model().objects.get(username=user_or_username)
    return user_or_username


def totp_device(user_or_username: Any) -> TOTPDevice:
    """The user's confirmed authenticator-app device; enrolled here if it has none."""
    user = _user(user_or_username)
    device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=two_factor.TOTP_NAME, confirmed=True)
    return device


def totp_code(device: TOTPDevice) -> str:
    """A code the device accepts now: the current time step, or the next one if the current
    step was already used (a second login in the same 30 s would otherwise be a replay)."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    if totp.t() <= device.last_t:
        totp.time += device.step * (device.last_t - totp.t() + 1)
    return f"{totp.token():0{device.digits}d}"


def session_key_for(user_or_username: Any, *, device: Any) -> str:
    """A saved session exactly as the login view's last step leaves it, verified by `device`.

    device=None gives a session that skipped the second factor: only for tests that check
    such a session is refused.
    """
    user = _user(user_or_username)
    engine = import_module(settings.SESSION_ENGINE)
    request = HttpRequest()
    request.session = engine.SessionStore()
    request.user = user
    two_factor.complete_login(request, user=user, device=device, backend=_password_backend())
    request.session.save()
    return request.session.session_key


def staff_client(user_or_username: Any, *, client: Client | None = None) -> Client:
    """A test client with a fully logged-in, OTP-verified staff session for this user."""
    client = client or Client()
    user = _user(user_or_username)
    name = settings.SESSION_COOKIE_NAME
    client.cookies[name] = session_key_for(user, device=totp_device(user))
    client.cookies[name].update(
        {"max-age": None, "path": "/", "domain": settings.SESSION_COOKIE_DOMAIN, "secure": False}
    )
    return client


def staff_session_cookie(user_or_username: Any) -> str:
    """`sessionid=...` for a fully logged-in staff session, for sockets and other processes."""
    client = staff_client(user_or_username)
    return f"sessionid={client.cookies['sessionid'].value}"


async def log_in_browser(page: Any, *, username: str, password: str, next_path: str) -> None:
    """Log in through the real login pages of the browser test server, then land on next_path:
    the password, then a code computed from the user's device (enrolled first if it has none)."""
    from channels.db import database_sync_to_async
    from playwright.async_api import expect

    device = await database_sync_to_async(totp_device)(username)
    await page.goto(next_path)
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    code = await database_sync_to_async(totp_code)(device)
    await page.get_by_label("Code").fill(code)
    await page.get_by_role("button", name="Verify").click()
    await expect(page).to_have_url(next_path)
