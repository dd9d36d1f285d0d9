"""HTTP side of staff sessions: two-factor enforced on every request, and automatic logoff.

Runs after django_otp's OTPMiddleware. A logged-in session that is not verified by one of the
user's own devices (where its role requires one), or that has been idle longer than
STAFF_IDLE_TIMEOUT_SECONDS, is ended here and the user sent to the login page. Every other
request counts as activity, except the warning script's GET of the idle clock.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from compliance import audit, roles, two_factor
from compliance.models import AuditEntry


class StaffSessionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated:
            reason = ""
            if not two_factor.session_is_verified(request.session, user):
                reason = "not_verified"
            elif two_factor.seconds_left(request.session) <= 0:
                reason = "idle"
            if reason:
                with transaction.atomic():
                    audit.record(
                        action="session.end",
                        actor=user,
                        role=roles.role_of(user),
                        source_ip=request.META.get("REMOTE_ADDR") or None,
                        target=f"user:{user.get_username()}",
                        outcome=AuditEntry.Outcome.DENIED,
                        details={"reason": reason},
                    )
                logout(request)
                if request.path == reverse("compliance:session"):
                    return JsonResponse(
                        {"remaining": 0, "login_url": settings.LOGIN_URL}, status=401
                    )
                return redirect_to_login(request.get_full_path())
            if not (request.method == "GET" and request.path == reverse("compliance:session")):
                two_factor.note_activity(request.session)
        return self.get_response(request)
