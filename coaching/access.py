"""Who counts as a supervisor for coaching, and over which departments.

The roles (compliance.roles) decide: the Supervisor role oversees the departments of its own
AgentProfile, the Administrator role every department. Being staff is not enough: agents are staff
too, and must never sit in on a colleague's chat or read another agent's reviews.
"""

from __future__ import annotations

from typing import Any

from compliance import roles


def is_supervisor(user: Any) -> bool:
    return roles.is_supervisor(user) or roles.is_administrator(user)


def possible_reviewers() -> Any:
    """Active users who have a review queue: supervisors and administrators (superusers too)."""
    from django.contrib.auth import get_user_model
    from django.db.models import Q

    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(
            Q(is_superuser=True) | Q(groups__name__in=[roles.SUPERVISOR, roles.ADMINISTRATOR])
        )
        .distinct()
        .order_by("username")
    )


def overseers_of(department_id: int) -> Any:
    """Active users who oversee a department: administrators (superusers too) and its
    supervisors (the Supervisor role with the department on their agent profile)."""
    from django.contrib.auth import get_user_model
    from django.db.models import Q

    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(
            Q(is_superuser=True)
            | Q(groups__name=roles.ADMINISTRATOR)
            | Q(groups__name=roles.SUPERVISOR, agent__departments=department_id)
        )
        .values_list("pk", flat=True)
    )


def supervised_department_ids(user: Any) -> set[int] | None:
    """None means every department (administrators); an empty set means none."""
    if roles.is_administrator(user):
        return None
    return set(roles.supervised_department_ids(user))


def oversees_department(user: Any, department_id: int) -> bool:
    ids = supervised_department_ids(user)
    return ids is None or department_id in ids
