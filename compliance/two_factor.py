"""Two-factor login: the password step, the one-time code step, enrolment, and session state.

The password alone never logs a staff user in when its role requires two-factor: it only puts
a *pending* login in the session (who, with which backend, for a few minutes). The user is
logged in (`django.contrib.auth.login`) and marked verified (`django_otp.login`) together, once
a code from one of its own confirmed devices matches. `complete_login` is that one place; the
test helpers in tests/auth.py call it too, so tests get exactly the session a real login gives.
"""

from __future__ import annotations

import io
import secrets
import time
from dataclasses import dataclass
from typing import Any

import django_otp
import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.db import transaction
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from compliance import roles

PENDING_KEY = "auth2fa_pending"
ACTIVITY_KEY = "auth2fa_last_activity"
PENDING_SECONDS = 300
BACKUP_CODES = 10
TOTP_NAME = "Authenticator app"
BACKUP_NAME = "Backup codes"


@dataclass(frozen=True)
class Pending:
    user: Any
    backend: str
    next_url: str


def needs_second_factor(user: Any) -> bool:
    return roles.two_factor_required(user)


def has_confirmed_device(user: Any) -> bool:
    return any(True for _ in django_otp.devices_for_user(user, confirmed=True))


def start_pending_login(request: HttpRequest, *, user: Any, next_url: str) -> None:
    """After a correct password: remember who, but log nobody in yet."""
    request.session.cycle_key()  # a fresh session id for a new login attempt
    request.session[PENDING_KEY] = {
        "user_id": user.pk,
        "backend": user.backend,
        "hash": user.get_session_auth_hash(),
        "at": time.time(),
        "next": next_url,
    }


def get_pending(request: HttpRequest) -> Pending | None:
    """The pending login, if it is recent and its user still has the same password and is active."""
    data = request.session.get(PENDING_KEY)
    if not isinstance(data, dict) or time.time() - data.get("at", 0) > PENDING_SECONDS:
        return None
    user = get_user_model().objects.filter(pk=data.get("user_id"), is_active=True).first()
    if user is None or not constant_time_compare(
        data.get("hash", ""), user.get_session_auth_hash()
    ):
        return None
    return Pending(user=user, backend=data["backend"], next_url=data.get("next") or "")


def verify_code(*, user: Any, code: str) -> Any:
    """The device of `user` that accepts `code`, or None. Forged, replayed, throttled: all None.

    In a transaction: devices are read FOR UPDATE, so the same TOTP code or backup code sent
    twice at once is accepted once (TOTP remembers the last time step used; a backup code is
    deleted when used).
    """
    code = "".join(code.split())[:16]
    if not code:
        return None
    with transaction.atomic():
        return django_otp.match_token(user, code)


def complete_login(request: HttpRequest, *, user: Any, device: Any, backend: str) -> None:
    """Log the user in; with a device, mark the session verified by that device."""
    request.session.pop(PENDING_KEY, None)
    login(request, user, backend=backend)
    if device is not None:
        django_otp.login(request, device)
    note_activity(request.session)


def note_activity(session: Any, *, now: float | None = None) -> None:
    session[ACTIVITY_KEY] = time.time() if now is None else now


def idle_timeout() -> int:
    return settings.STAFF_IDLE_TIMEOUT_SECONDS


def seconds_left(session: Any, *, now: float | None = None) -> float:
    """How long until this session ends for inactivity (0 or less: it has)."""
    last = session.get(ACTIVITY_KEY)
    if not isinstance(last, int | float):
        return 0.0
    return last + idle_timeout() - (time.time() if now is None else now)


def session_device(session: Any, user: Any) -> Any:
    """The confirmed device of `user` that verified this session, or None."""
    persistent_id = session.get(django_otp.DEVICE_ID_SESSION_KEY)
    if not persistent_id:
        return None
    from django_otp.models import Device

    device = Device.from_persistent_id(persistent_id)
    if device is None or device.user_id != user.pk or not device.confirmed:
        return None
    return device


def session_is_verified(session: Any, user: Any) -> bool:
    return not needs_second_factor(user) or session_device(session, user) is not None


# --- enrolment ------------------------------------------------------------------------------


def unconfirmed_totp_device(*, user: Any) -> TOTPDevice:
    """The device being enrolled: one unconfirmed TOTP device per user, kept until confirmed."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_NAME, confirmed=False)
    return device


def qr_svg(device: TOTPDevice) -> bytes:
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue()


def confirm_enrolment(*, user: Any, code: str) -> tuple[TOTPDevice, list[str]] | None:
    """Confirm the user's new TOTP device with a code from it; returns it and new backup codes."""
    code = "".join(code.split())[:16]
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update()
            .filter(user=user, confirmed=False)
            .order_by("pk")
            .first()
        )
        if device is None or not code or not device.verify_token(code):
            return None
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        return device, replace_backup_codes(user=user)


def replace_backup_codes(*, user: Any) -> list[str]:
    """A new set of single-use backup codes (the old set stops working)."""
    static, _ = StaticDevice.objects.get_or_create(
        user=user, name=BACKUP_NAME, defaults={"confirmed": True}
    )
    static.token_set.all().delete()
    codes = [secrets.token_hex(5) for _ in range(BACKUP_CODES)]
    StaticToken.objects.bulk_create(StaticToken(device=static, token=c) for c in codes)
    return codes
