"""The password policy as Django password validators, plus history and expiry.

Every place Django sets a password runs AUTH_PASSWORD_VALIDATORS (the password change page, the
admin's forms, `manage.py changepassword`, `createsuperuser`), and `User.save()` calls each
validator's `password_changed()` after a new password is stored. So the policy, the history and
the "end the other sessions" rule live here and no form can skip them.
"""

from __future__ import annotations

import contextvars
from datetime import timedelta
from typing import Any

from django.contrib.auth.hashers import check_password
from django.contrib.auth.password_validation import (
    CommonPasswordValidator,
    UserAttributeSimilarityValidator,
)
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from compliance import audit
from compliance.access import client_ip
from compliance.models import PasswordHistory, PasswordPolicy

# The request being served, set by compliance.middleware: a password change made in it keeps
# that session and records who changed it from where.
current_request: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "current_request", default=None
)


def get_password_policy() -> PasswordPolicy:
    return PasswordPolicy.objects.filter(pk=1).first() or PasswordPolicy()


class PolicyLengthValidator:
    def validate(self, password: str, user: Any = None) -> None:
        minimum = get_password_policy().min_length
        if len(password) < minimum:
            raise ValidationError(
                f"This password is too short. It must contain at least {minimum} characters.",
                code="password_too_short",
            )

    def get_help_text(self) -> str:
        return f"Your password must contain at least {get_password_policy().min_length} characters."


def character_classes(password: str) -> int:
    return sum(
        [
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        ]
    )


class PolicyCharacterClassesValidator:
    def validate(self, password: str, user: Any = None) -> None:
        required = get_password_policy().min_character_classes
        if character_classes(password) < required:
            raise ValidationError(
                f"This password must mix at least {required} of: lower case letters, upper case "
                "letters, digits, other characters.",
                code="password_too_few_classes",
            )

    def get_help_text(self) -> str:
        required = get_password_policy().min_character_classes
        if required <= 1:
            return ""
        return (
            f"Your password must mix at least {required} of: lower case letters, upper case "
            "letters, digits, other characters."
        )


class PolicySimilarityValidator(UserAttributeSimilarityValidator):
    """Django's similarity check, plus: the password may not contain the username at all
    (Django compares whole strings, so "alice-alice-alice" would pass it for alice)."""

    def validate(self, password: str, user: Any = None) -> None:
        if not get_password_policy().reject_similar_to_username:
            return
        username = user.get_username().lower() if user is not None else ""
        if len(username) >= 3 and username in password.lower():
            raise ValidationError(
                "The password is too similar to the username.", code="password_too_similar"
            )
        super().validate(password, user)


class PolicyCommonPasswordValidator(CommonPasswordValidator):
    def validate(self, password: str, user: Any = None) -> None:
        if get_password_policy().reject_common:
            super().validate(password, user)


class PasswordHistoryValidator:
    """Refuses the user's last N passwords; when a password is stored, remembers its hash,
    ends the user's other sessions and audits the change."""

    def validate(self, password: str, user: Any = None) -> None:
        count = get_password_policy().history_count
        if user is None or user.pk is None or count == 0:
            return
        hashes = list(
            PasswordHistory.objects.filter(user=user)
            .order_by("-changed_at", "-id")
            .values_list("password_hash", flat=True)[:count]
        )
        if user.password and user.password not in hashes:
            hashes = [user.password, *hashes][:count]
        if any(check_password(password, encoded) for encoded in hashes):
            raise ValidationError(
                f"You used this password recently. Choose one that is not among your last {count}.",
                code="password_reused",
            )

    def get_help_text(self) -> str:
        count = get_password_policy().history_count
        return f"It may not be one of your last {count} passwords." if count else ""

    def password_changed(self, password: str, user: Any = None) -> None:
        if user is None or user.pk is None:
            return
        record_password_change(user=user, request=current_request.get())


def record_password_change(*, user: Any, request: Any) -> None:
    """Remember the new hash, end the user's other sessions, audit: one transaction."""
    policy = get_password_policy()
    with transaction.atomic():
        had_history = PasswordHistory.objects.filter(user=user).exists()
        PasswordHistory.objects.create(
            user=user, password_hash=user.password, changed_at=timezone.now()
        )
        # Keep the newest N (at least one: expiry counts from it).
        keep = list(
            PasswordHistory.objects.filter(user=user)
            .order_by("-changed_at", "-id")
            .values_list("id", flat=True)[: max(policy.history_count, 1)]
        )
        PasswordHistory.objects.filter(user=user).exclude(id__in=keep).delete()
        # A brand-new account getting its first password is not a change: no sessions to end and
        # nothing to audit (account creation is audited where accounts are created).
        if not had_history and user.last_login is None:
            return
        actor = getattr(request, "user", None) if request is not None else None
        by_self = actor is not None and actor.is_authenticated and actor.pk == user.pk
        keep_key = request.session.session_key if by_self else None
        ended = end_sessions_of(user_id=user.pk, except_key=keep_key)
        audit.record(
            action="password.changed",
            actor=actor,
            role=audit.role_of(actor),
            source_ip=client_ip(request) if request is not None else None,
            target=f"user:{user.get_username()}",
            details={"other_sessions_ended": ended, "by_self": by_self},
        )


def end_sessions_of(*, user_id: int, except_key: str | None) -> int:
    """Delete the user's sessions but one; the socket guard closes the sockets of deleted ones.

    Sessions store the user id inside their encoded data, so this decodes the unexpired ones;
    fine for the thousands of sessions a contact centre has.
    """
    doomed = []
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator(chunk_size=500):
        if session.session_key == except_key:
            continue
        if str(session.get_decoded().get("_auth_user_id")) == str(user_id):
            doomed.append(session.session_key)
    if doomed:
        Session.objects.filter(session_key__in=doomed).delete()
    return len(doomed)


def password_expired(user: Any) -> bool:
    days = get_password_policy().expiry_days
    if days == 0:
        return False
    last = (
        PasswordHistory.objects.filter(user=user)
        .order_by("-changed_at")
        .values_list("changed_at", flat=True)
        .first()
    )
    changed = last or user.date_joined
    return timezone.now() - changed > timedelta(days=days)
