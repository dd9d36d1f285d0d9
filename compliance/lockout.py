"""Failed logins and lockouts (django-axes): audited, and one attempt per username at a time.

django-axes checks the failure count before the password and records a failure after it, in
separate statements: a burst of parallel guesses could all pass the check before any failure is
counted and so get more tries than the limit. `SerializedLoginMixin` makes the check, the
password test and the count for one username one transaction under a PostgreSQL advisory lock,
so parallel attempts for a username queue and each sees the count its predecessor committed.
(SQLite needs no lock: the project's IMMEDIATE transactions already serialize writers.)
"""

from __future__ import annotations

import zlib
from typing import Any

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from compliance import access, audit
from compliance.models import AuditEntry

# First key of the two-key advisory lock space ("LOGN"); the second is the username's CRC.
_LOGIN_LOCK_NAMESPACE = 0x4C4F474E


def lock_login_name(username: str) -> None:
    """Hold the login lock for this username until the current transaction ends."""
    if connection.vendor != "postgresql":
        return
    key = zlib.crc32(username.strip().lower().encode()) - 2**31
    with connection.cursor() as cursor:
        cursor.execute(
            # CAST, not ::int: with client-side binding `-2147483648::int` parses as
            # -(2147483648::int) and overflows (the empty username's key is exactly that).
            "SELECT pg_advisory_xact_lock(CAST(%s AS integer), CAST(%s AS integer))",
            [_LOGIN_LOCK_NAMESPACE, key],
        )


class SerializedLoginMixin:
    """For any AuthenticationForm: its clean() runs under the username's login lock."""

    def clean(self) -> dict[str, Any]:
        username = str(self.data.get("username", ""))  # type: ignore[attr-defined]
        error: ValidationError | None = None
        with transaction.atomic():
            lock_login_name(username)
            try:
                cleaned = super().clean()  # type: ignore[misc]
            except ValidationError as exc:
                # Raised after the transaction commits, so the failure count is kept.
                error = exc
        if error is not None:
            raise error
        return cleaned


class LoginForm(SerializedLoginMixin, AuthenticationForm):
    pass


class AdminLoginForm(SerializedLoginMixin, AdminAuthenticationForm):
    pass


def audit_login_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
) -> None:
    locked = bool(getattr(request, "axes_locked_out", False))
    audit.record(
        action="login.failed",
        source_ip=access.client_ip(request) if request is not None else None,
        target=f"user:{credentials.get('username', '')}",
        outcome=AuditEntry.Outcome.DENIED if locked else AuditEntry.Outcome.FAILURE,
        details={
            "locked_out": locked,
            "password_checked": bool(getattr(request, "password_checked", False)),
        },
    )


def audit_locked_out(
    sender: Any, request: Any, username: str | None, ip_address: str | None, **kwargs: Any
) -> None:
    audit.record(
        action="login.locked_out",
        source_ip=ip_address,
        target=f"user:{username or ''}",
        outcome=AuditEntry.Outcome.DENIED,
    )
