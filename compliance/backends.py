"""Administrators hold every permission, including those of models added after migration 0004.

The Administrator group is given every permission that existed when the roles were created;
this backend covers the ones added since, so a new admin page needs no data migration to be
reachable by administrators. It authenticates nobody (ModelBackend does that).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import BaseBackend

from compliance import roles


class AdministratorBackend(BaseBackend):
    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return roles.is_administrator(user_obj)

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return roles.is_administrator(user_obj)
