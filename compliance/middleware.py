"""Every staff request: from an allowed network, and with a password that has not expired."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from compliance import access, audit, passwords
from compliance.models import AuditEntry

# Paths an expired password may still reach: the change itself, logging out, static files.
_EXPIRY_EXEMPT = ("/accounts/password/", "/accounts/logout/", "/static/", "/healthz")
# Someone on a refused network may still end their session.
_NETWORK_EXEMPT = ("/accounts/logout/",)


class StaffAccessMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = passwords.current_request.set(request)
        try:
            refusal = self._check(request)
            return refusal if refusal is not None else self.get_response(request)
        finally:
            passwords.current_request.reset(token)

    def _check(self, request: HttpRequest) -> HttpResponse | None:
        user = request.user
        if not user.is_authenticated or request.path.startswith(_NETWORK_EXEMPT):
            return None
        ip = access.client_ip(request)
        refused_by = access.refusal_for(user=user, ip=ip)
        if refused_by is not None:
            audit.record(
                action="access.ip_refused",
                actor=user,
                role=audit.role_of(user),
                source_ip=ip,
                target=f"path:{request.path}",
                outcome=AuditEntry.Outcome.DENIED,
                details={"list": refused_by},
            )
            return render(request, "compliance/ip_refused.html", status=403)
        if not request.path.startswith(_EXPIRY_EXEMPT) and passwords.password_expired(user):
            return redirect(f"{reverse('password_change')}?expired=1")
        return None
