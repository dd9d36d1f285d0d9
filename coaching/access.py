"""Who counts as a supervisor, and over which departments: the ONE place to switch to roles.

Until the roles work (group "Supervisor") lands, staff and superusers are supervisors. A
supervisor oversees the departments of its own AgentProfile; a superuser oversees all of them.
"""

from __future__ import annotations

from typing import Any

from chat.models import Department


def is_supervisor(user: Any) -> bool:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    # Switch to `user.groups.filter(name="Supervisor").exists()` once roles exist.
    return bool(user.is_superuser or user.is_staff)


def supervised_department_ids(user: Any) -> set[int] | None:
    """None means every department (superusers); an empty set means none."""
    if not is_supervisor(user):
        return set()
    if user.is_superuser:
        return None
    return set(Department.objects.filter(agents__user=user).values_list("pk", flat=True))


def oversees_department(user: Any, department_id: int) -> bool:
    ids = supervised_department_ids(user)
    return ids is None or department_id in ids
