"""Login in two steps (password, then a one-time code), enrolment, and the idle-session clock.

Every outcome is audited. Refusals say what to do, never which part was wrong beyond what the
user already knows: a wrong password and an unknown user read the same, and so do a forged, a
replayed and a throttled code.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from compliance import audit, roles, two_factor
from compliance.lockout import LoginForm
from compliance.models import AuditEntry

BAD_CODE = (
    "That code was not accepted. Enter the current code from your authenticator app, "
    "or one of your unused backup codes."
)
EXPIRED = "Your sign-in took too long. Enter your username and password again."


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True}),
    )


def _ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _record(request: HttpRequest, *, action: str, user=None, outcome=AuditEntry.Outcome.SUCCESS,
            target: str = "", details=None) -> None:
    with transaction.atomic():
        audit.record(
            action=action,
            actor=user,
            role=roles.role_of(user) if user is not None else "",
            source_ip=_ip(request),
            target=target,
            outcome=outcome,
            details=details,
        )


def _safe_next(request: HttpRequest, candidate: str) -> str:
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return settings.LOGIN_REDIRECT_URL


def _finish(request: HttpRequest, pending: two_factor.Pending, device) -> HttpResponse:
    two_factor.complete_login(request, user=pending.user, device=device, backend=pending.backend)
    return redirect(_safe_next(request, pending.next_url))


@sensitive_post_parameters()
@csrf_protect
@never_cache
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME, "")
    # LoginForm: axes' failure count and the password test under one per-username lock.
    form = LoginForm(request, data=request.POST or None)
    if request.method == "POST":
        if not form.is_valid():
            username = str(request.POST.get("username", ""))[:150]
            _record(request, action="login.password", outcome=AuditEntry.Outcome.FAILURE,
                    target=f"user:{username}")
            return render(request, "registration/login.html", {"form": form, "next": next_url})
        user = form.get_user()
        _record(request, action="login.password", user=user, target=f"user:{user.get_username()}")
        if not two_factor.needs_second_factor(user):
            request.session.cycle_key()
            two_factor.complete_login(request, user=user, device=None, backend=user.backend)
            return redirect(_safe_next(request, next_url))
        two_factor.start_pending_login(request, user=user, next_url=next_url)
        if two_factor.has_confirmed_device(user):
            return redirect("compliance:login_code")
        return redirect("compliance:enrol")
    return render(request, "registration/login.html", {"form": form, "next": next_url})


@sensitive_post_parameters()
@csrf_protect
@never_cache
def login_code_view(request: HttpRequest) -> HttpResponse:
    pending = two_factor.get_pending(request)
    if pending is None:
        return _start_over(request)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = two_factor.verify_code(user=pending.user, code=form.cleaned_data["code"])
        if device is not None:
            _record(request, action="login.otp", user=pending.user,
                    target=f"user:{pending.user.get_username()}",
                    details={"device": device.persistent_id})
            return _finish(request, pending, device)
        _record(request, action="login.otp", user=pending.user, outcome=AuditEntry.Outcome.FAILURE,
                target=f"user:{pending.user.get_username()}")
        form.add_error("code", BAD_CODE)
    status = 400 if request.method == "POST" else 200
    return render(request, "compliance/login_code.html", {"form": form}, status=status)


@sensitive_post_parameters()
@csrf_protect
@never_cache
def enrol_view(request: HttpRequest) -> HttpResponse:
    """First sign-in of a user without a device: scan the QR code, confirm with a code."""
    pending = two_factor.get_pending(request)
    if pending is None:
        return _start_over(request)
    if two_factor.has_confirmed_device(pending.user):
        return redirect("compliance:login_code")  # enrolment is not a way round an existing device
    device = two_factor.unconfirmed_totp_device(user=pending.user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        confirmed = two_factor.confirm_enrolment(user=pending.user, code=form.cleaned_data["code"])
        if confirmed is not None:
            totp, codes = confirmed
            _record(request, action="2fa.enrol", user=pending.user,
                    target=f"user:{pending.user.get_username()}",
                    details={"device": totp.persistent_id})
            two_factor.complete_login(request, user=pending.user, device=totp, backend=pending.backend)
            return render(request, "compliance/backup_codes.html",
                          {"codes": codes, "next": _safe_next(request, pending.next_url)})
        _record(request, action="2fa.enrol", user=pending.user, outcome=AuditEntry.Outcome.FAILURE,
                target=f"user:{pending.user.get_username()}")
        form.add_error("code", BAD_CODE)
    status = 400 if request.method == "POST" else 200
    return render(request, "compliance/enrol.html",
                  {"form": form, "secret": _base32(device)}, status=status)


@never_cache
def enrol_qr_view(request: HttpRequest) -> HttpResponse:
    pending = two_factor.get_pending(request)
    if pending is None or two_factor.has_confirmed_device(pending.user):
        return HttpResponse(status=404)
    device = two_factor.unconfirmed_totp_device(user=pending.user)
    return HttpResponse(two_factor.qr_svg(device), content_type="image/svg+xml")


@never_cache
@require_http_methods(["GET", "POST"])
def session_view(request: HttpRequest) -> JsonResponse:
    """The idle clock for the warning script. GET reads it (not activity); POST is activity.

    The session middleware does the rest: it ends an expired session before this view runs
    and counts a POST here as activity.
    """
    if not request.user.is_authenticated:
        return JsonResponse({"remaining": 0, "login_url": settings.LOGIN_URL}, status=401)
    return JsonResponse({"remaining": int(two_factor.seconds_left(request.session)),
                         "timeout": two_factor.idle_timeout()})


def _start_over(request: HttpRequest) -> HttpResponse:
    request.session.pop(two_factor.PENDING_KEY, None)
    from django.contrib import messages

    messages.error(request, EXPIRED)
    return redirect(reverse("login"))


def _base32(device) -> str:
    from base64 import b32encode

    return b32encode(device.bin_key).decode()
