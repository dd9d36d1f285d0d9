"""Back-office pages of the widget and tickets (imported by chat/admin.py, kept apart so the
workspace's admin changes and these do not collide)."""

from __future__ import annotations

from django.contrib import admin

from chat.models import (
    AllowedOrigin,
    InvitationRule,
    ProactiveInvitation,
    SurveyQuestion,
    SurveyResponse,
    Ticket,
    TicketMessage,
    WidgetDepartmentSettings,
)


class DepartmentScopedAdmin(admin.ModelAdmin):
    """Supervisors see only their departments' rows; the rule lives with the roles.

    `department_path` is the lookup from the row to its department.
    """

    department_path = "department"

    def get_queryset(self, request):
        from compliance.roles import department_scope

        rows = super().get_queryset(request)
        scope = department_scope(request.user)
        return rows if scope is None else rows.filter(**{f"{self.department_path}__in": scope})



@admin.register(AllowedOrigin)
class AllowedOriginAdmin(admin.ModelAdmin):
    list_display = ("origin", "enabled", "note")
    list_filter = ("enabled",)
    search_fields = ("origin", "note")


@admin.register(WidgetDepartmentSettings)
class WidgetDepartmentSettingsAdmin(admin.ModelAdmin):
    list_display = ("department", "require_name", "require_email", "require_question")
    list_select_related = ("department",)


@admin.register(SurveyQuestion)
class SurveyQuestionAdmin(admin.ModelAdmin):
    list_display = ("text", "key", "order", "enabled")
    list_editable = ("order", "enabled")


@admin.register(SurveyResponse)
class SurveyResponseAdmin(DepartmentScopedAdmin):
    department_path = "conversation__department"
    list_display = ("conversation", "rating", "submitted_at")
    list_filter = ("rating",)
    date_hierarchy = "submitted_at"
    raw_id_fields = ("conversation",)
    readonly_fields = ("conversation", "rating", "comment", "answers", "submitted_at")

    def has_add_permission(self, request) -> bool:
        return False  # only the visitor answers a survey


@admin.register(InvitationRule)
class InvitationRuleAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "enabled",
        "department",
        "url_pattern",
        "seconds_on_page",
        "only_when_capacity",
    )
    list_filter = ("enabled", "department")
    list_select_related = ("department",)


@admin.register(ProactiveInvitation)
class ProactiveInvitationAdmin(DepartmentScopedAdmin):
    list_display = ("id", "sent_at", "department", "status", "rule", "conversation")
    list_filter = ("status", "department")
    list_select_related = ("department", "rule", "conversation")
    date_hierarchy = "sent_at"
    readonly_fields = (
        "rule",
        "visitor",
        "department",
        "page_url",
        "status",
        "sent_at",
        "responded_at",
        "conversation",
    )

    def has_add_permission(self, request) -> bool:
        return False


class TicketMessageInline(admin.TabularInline):
    model = TicketMessage
    extra = 0
    can_delete = False
    fields = ("created_at", "kind", "author", "body", "emailed_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # replies go through the ticket page, which e-mails and audits them


@admin.register(Ticket)
class TicketAdmin(DepartmentScopedAdmin):
    list_display = ("id", "subject", "status", "source", "department", "assignee", "updated_at")
    list_filter = ("status", "source", "department")
    list_select_related = ("department", "assignee")
    search_fields = ("subject", "email", "name")
    raw_id_fields = ("visitor", "conversation", "created_by")
    readonly_fields = (
        "source",
        "visitor",
        "conversation",
        "created_by",
        "created_at",
        "updated_at",
    )
    inlines = (TicketMessageInline,)
