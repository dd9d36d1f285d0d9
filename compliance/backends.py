"""Authentication backends of the staff login.

- IPRestrictedModelBackend: password login that also obeys the network allowlists
  (compliance.access).
- AdministratorBackend: administrators hold every permission, including those of models added
  after migration 0004. The Administrator group is given every permission that existed when the
  roles were created; this backend covers the ones added since, so a new admin page needs no data
  migration to be reachable by administrators. It authenticates nobody (ModelBackend does that).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import BaseBackend, ModelBackend
from django.core.exceptions import PermissionDenied

from compliance import access, audit, roles
from compliance.models import AuditEntry


class IPRestrictedModelBackend(ModelBackend):
    """ModelBackend, but a right password from a refused address is a failed login.

    It fails exactly like a wrong password (same message, counted by the lockout), so the login
    page does not tell someone on a refused network that they guessed the password.
    """

    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if request is not None:
            # For the audit: this attempt got as far as the password (it was not locked out).
            request.password_checked = True
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None or request is None:
            return user
        ip = access.client_ip(request)
        refused_by = access.refusal_for(user=user, ip=ip)
        if refused_by is None:
            return user
        audit.record(
            action="login.ip_refused",
            role=audit.role_of(user),
            source_ip=ip,
            target=f"user:{user.get_username()}",
            outcome=AuditEntry.Outcome.DENIED,
            details={"list": refused_by},
        )
        raise PermissionDenied


class AdministratorBackend(BaseBackend):
    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return roles.is_administrator(user_obj)

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return roles.is_administrator(user_obj)
