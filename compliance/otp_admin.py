"""The back office behind two-factor: django-otp's OTPAdminSite, logging in through our login.

OTPAdminSite lets in only OTP-verified users. Roles whose two-factor an administrator switched
off are let in with their password session; the site's own login page sends to the two-step
login, so there is one way in.
"""

from __future__ import annotations

from django.contrib.admin import AdminSite
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import urlencode
from django_otp.admin import OTPAdminSite

from compliance import two_factor


class CoachlineAdminSite(OTPAdminSite):
    def has_permission(self, request: HttpRequest) -> bool:
        if not AdminSite.has_permission(self, request):
            return False
        user = request.user
        return user.is_verified() or not two_factor.needs_second_factor(user)

    def login(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        next_url = request.GET.get(REDIRECT_FIELD_NAME) or "/admin/"
        return redirect(f"/accounts/login/?{urlencode({REDIRECT_FIELD_NAME: next_url})}")


def install(site: AdminSite) -> None:
    """Turn the default admin site (with every ModelAdmin registered on it) into this one."""
    site.__class__ = CoachlineAdminSite
