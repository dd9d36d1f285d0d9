"""Back-office pages of the widget and tickets (imported by chat/admin.py, kept apart so the
workspace's admin changes and these do not collide)."""

from __future__ import annotations

from django.contrib import admin

from chat import readback
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
    readonly_fields = ("conversation", "rating", "comment_shown", "answers_shown", "submitted_at")
    fields = readonly_fields

    # Read back from storage: masked with the archive rules (chat.readback).
    @admin.display(description="comment")
    def comment_shown(self, obj: SurveyResponse) -> str:
        return readback.text(obj.comment, department_id=obj.conversation.department_id)

    @admin.display(description="answers")
    def answers_shown(self, obj: SurveyResponse) -> dict:
        return readback.answers(obj.answers, department_id=obj.conversation.department_id)

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
    fields = ("created_at", "kind", "author", "text", "emailed_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # replies go through the ticket page, which e-mails and audits them

    @admin.display(description="body")
    def text(self, obj: TicketMessage) -> str:
        return readback.text(obj.body, department_id=obj.ticket.department_id)


@admin.register(Ticket)
class TicketAdmin(DepartmentScopedAdmin):
    list_display = ("id", "subject_shown", "status", "source", "department", "assignee", "updated_at")
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
        "subject_shown",
        "name_shown",
    )
    inlines = (TicketMessageInline,)
    _SHOWN = {"subject": "subject_shown", "name": "name_shown"}

    def get_fields(self, request, obj=None):
        # A saved ticket's subject and name are read back from storage, so they are shown masked
        # with the archive rules and not offered for editing (saving would store the X's anyway).
        fields = [f for f in super().get_fields(request, obj) if f not in self._SHOWN.values()]
        return fields if obj is None else [self._SHOWN.get(f, f) for f in fields]

    @admin.display(description="subject")
    def subject_shown(self, obj: Ticket) -> str:
        return readback.text(obj.subject, department_id=obj.department_id)

    @admin.display(description="name")
    def name_shown(self, obj: Ticket) -> str:
        return readback.text(obj.name, department_id=obj.department_id)
