"""The four staff roles (Django groups created by migration 0004) and what each may reach.

A user's role is the group it belongs to; a superuser counts as an Administrator. Supervisors
are scoped to the departments of their AgentProfile (the same many-to-many agents use for their
queues), so one place says who works where.
"""

from __future__ import annotations

from typing import Any

AGENT = "Agent"
SUPERVISOR = "Supervisor"
COMPLIANCE_OFFICER = "Compliance officer"
ADMINISTRATOR = "Administrator"
ROLES = (AGENT, SUPERVISOR, COMPLIANCE_OFFICER, ADMINISTRATOR)

# Permissions per role, as "app_label.codename". Administrators get every permission.
PERMISSIONS: dict[str, tuple[str, ...]] = {
    AGENT: ("chat.view_cannedresponse",),
    SUPERVISOR: (
        "chat.view_conversation",
        "chat.view_department",
        "chat.view_agentprofile",
        "chat.view_cannedresponse",
        "chat.add_cannedresponse",
        "chat.change_cannedresponse",
        "chat.delete_cannedresponse",
    ),
    COMPLIANCE_OFFICER: (
        "compliance.view_auditentry",
        "compliance.view_maskingrule",
        "compliance.add_maskingrule",
        "compliance.change_maskingrule",
        "compliance.view_maskingsettings",
        "compliance.change_maskingsettings",
        "chat.view_conversation",
    ),
}


def role_names(user: Any) -> frozenset[str]:
    """The roles the user holds (cached on the instance for the request)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    cached = getattr(user, "_coachline_roles", None)
    if cached is None:
        cached = frozenset(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        if user.is_superuser:
            cached |= {ADMINISTRATOR}
        user._coachline_roles = cached
    return cached


def role_of(user: Any) -> str:
    """The user's highest role, or "" for none (anonymous, inactive, or staff without a role)."""
    names = role_names(user)
    for role in (ADMINISTRATOR, COMPLIANCE_OFFICER, SUPERVISOR, AGENT):
        if role in names:
            return role
    return ""


def is_agent(user: Any) -> bool:
    return AGENT in role_names(user)


def is_supervisor(user: Any) -> bool:
    return SUPERVISOR in role_names(user)


def is_compliance_officer(user: Any) -> bool:
    return COMPLIANCE_OFFICER in role_names(user)


def is_administrator(user: Any) -> bool:
    return ADMINISTRATOR in role_names(user)


def can_read_audit_log(user: Any) -> bool:
    return bool(role_names(user) & {COMPLIANCE_OFFICER, ADMINISTRATOR})


def supervised_department_ids(user: Any) -> frozenset[int]:
    """Departments a supervisor oversees: those of its AgentProfile. Administrators: all."""
    from chat.models import Department

    if is_administrator(user):
        return frozenset(Department.objects.values_list("pk", flat=True))
    if not is_supervisor(user):
        return frozenset()
    return frozenset(Department.objects.filter(agents__user=user).values_list("pk", flat=True))


def department_scope(user: Any) -> frozenset[int] | None:
    """Departments whose conversations the user may read in the back office; None: all.

    Compliance officers and administrators read every department; a supervisor only its own;
    anyone else none (they reach their own chats through the workspace, not the back office).
    """
    names = role_names(user)
    if names & {ADMINISTRATOR, COMPLIANCE_OFFICER}:
        return None
    return supervised_department_ids(user)


def two_factor_required(user: Any) -> bool:
    """True unless every role the user holds has two-factor switched off in admin.

    Superusers and staff without any role always need it: the safe default.
    """
    from compliance.models import RoleSecurity

    if user.is_superuser:
        return True
    groups = list(user.groups.filter(name__in=ROLES).values_list("pk", flat=True))
    if not groups:
        return True
    optional = RoleSecurity.objects.filter(group_id__in=groups, require_two_factor=False).count()
    return optional < len(groups)
