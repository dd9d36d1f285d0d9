from django.contrib import admin

from chat import readback
from chat.models import (
    AgentProfile,
    Assignment,
    CannedResponse,
    Conversation,
    Department,
    Message,
    PresenceInterval,
    Visitor,
)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class MessageInline(ReadOnlyInline):
    """The transcript: read-only, in order, with who could see each line."""

    model = Message
    fields = ("seq", "created_at", "role", "sender", "visibility", "whisper_to", "text")
    readonly_fields = fields
    ordering = ("seq",)

    @admin.display(description="body")
    def text(self, obj: Message) -> str:
        # Read back from storage: masked with the archive rules (chat.readback).
        return readback.text(obj.body, department_id=obj.conversation.department_id)


class AssignmentInline(ReadOnlyInline):
    model = Assignment
    fields = ("agent", "offered_at", "accepted_at", "first_reply_at", "ended_at", "end_reason", "transfer_note")
    readonly_fields = fields


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "department", "visitor", "agent", "status", "ended_by", "disposition")
    list_filter = ("status", "department", "ended_by", "disposition")
    search_fields = ("visitor__name", "visitor__email", "subject")
    date_hierarchy = "created_at"
    list_select_related = ("department", "visitor", "agent")
    readonly_fields = (
        "visitor", "department", "agent", "status", "subject_shown", "created_at", "queued_at",
        "queue_order_at", "assigned_at", "first_agent_reply_at", "ended_at", "ended_by", "last_seq",
        "disposition", "disposition_at", "disposition_by",
    )
    fields = readonly_fields
    inlines = (AssignmentInline, MessageInline)

    @admin.display(description="subject")
    def subject_shown(self, obj: Conversation) -> str:
        return readback.text(obj.subject, department_id=obj.department_id)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Opening a conversation here shows its whole transcript: that look is audited.
        from compliance.admin_audit import record_transcript_view

        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and response.status_code == 200:
            record_transcript_view(request=request, conversation_id=int(object_id), where="back office")
        return response

    def get_queryset(self, request):
        # Supervisors see their departments' transcripts only; the rule lives with the roles.
        from compliance.roles import department_scope

        conversations = super().get_queryset(request)
        scope = department_scope(request.user)
        return conversations if scope is None else conversations.filter(department_id__in=scope)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # transcripts are removed only by the retention policy


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "routing", "accept_timeout_seconds")
    prepopulated_fields = {"slug": ("name",)}


class PresenceInline(ReadOnlyInline):
    model = PresenceInterval
    fields = ("status", "started_at", "ended_at")
    readonly_fields = fields
    ordering = ("-started_at",)
    max_num = 20


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin):
    list_display = ("display_name", "user", "presence", "max_chats", "last_seen_at")
    list_filter = ("presence", "departments")
    filter_horizontal = ("departments",)
    raw_id_fields = ("user",)
    readonly_fields = ("presence", "presence_changed_at", "last_assigned_at", "last_seen_at")
    inlines = (PresenceInline,)


@admin.register(Visitor)
class VisitorAdmin(admin.ModelAdmin):
    list_display = ("id", "name_shown", "email", "created_at", "last_seen_at")
    search_fields = ("name", "email")
    readonly_fields = ("token_hash", "name_shown", "email", "page_url", "referrer", "user_agent",
                       "ip_address", "created_at", "last_seen_at")
    fields = readonly_fields

    @admin.display(description="name")
    def name_shown(self, obj: Visitor) -> str:
        # A visitor belongs to no department: the archive rules of every department apply.
        return readback.text(obj.name, department_id=None)

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(CannedResponse)
class CannedResponseAdmin(admin.ModelAdmin):
    list_display = ("shortcut", "title", "department", "owner")
    list_filter = ("department",)
    search_fields = ("shortcut", "title", "body")
    raw_id_fields = ("owner",)


# --- Agent workspace ------------------------------------------------------------------------

from django import forms

from chat.models import CrmLookup, DirectMessage


class CrmLookupForm(forms.ModelForm):
    # The key is never shown back; leaving the box empty keeps the stored one.
    api_key = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted, never shown again. Leave empty to keep the current key.",
    )

    class Meta:
        model = CrmLookup
        fields = ("enabled", "url_template", "header_name", "api_key", "timeout_seconds", "cache_seconds")

    def clean_api_key(self) -> str:
        return self.cleaned_data["api_key"] or (self.instance.api_key if self.instance.pk else "")


@admin.register(CrmLookup)
class CrmLookupAdmin(admin.ModelAdmin):
    form = CrmLookupForm
    list_display = ("url_template", "enabled", "timeout_seconds", "cache_seconds")


@admin.register(DirectMessage)
class DirectMessageAdmin(admin.ModelAdmin):
    list_display = ("created_at", "sender", "recipient")
    list_select_related = ("sender", "recipient")
    readonly_fields = ("sender", "recipient", "body", "client_id", "created_at")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# --- Blocks and attachments ---------------------------------------------------------------

from chat.models import AttachmentSettings, VisitorBlock


@admin.register(VisitorBlock)
class VisitorBlockAdmin(admin.ModelAdmin):
    """Blocks agents made from the workspace; untick *enabled* to lift one (the row stays)."""

    list_display = ("created_at", "kind", "ip_address", "visitor", "department", "created_by", "enabled")
    list_filter = ("enabled", "kind", "department")
    list_select_related = ("visitor", "department", "created_by")
    fields = ("enabled", "kind", "visitor", "ip_address", "reason", "conversation", "department", "created_by",
              "created_at")
    readonly_fields = ("kind", "visitor", "ip_address", "reason", "conversation", "department", "created_by",
                       "created_at")

    def get_queryset(self, request):
        from compliance.roles import department_scope

        rows = super().get_queryset(request)
        scope = department_scope(request.user)
        return rows if scope is None else rows.filter(department_id__in=scope)

    def has_add_permission(self, request) -> bool:
        return False  # blocks are made from a chat in the workspace, with the chat as the reason

    def save_model(self, request, obj, form, change) -> None:
        from compliance import audit

        super().save_model(request, obj, form, change)
        if change and "enabled" in form.changed_data:
            audit.record(
                action="chat.visitor_block_lifted" if not obj.enabled else "chat.visitor_block_restored",
                actor=request.user,
                role=audit.role_of(request.user),
                source_ip=request.META.get("REMOTE_ADDR") or None,
                target=f"visitor_block:{obj.pk}",
            )


@admin.register(AttachmentSettings)
class AttachmentSettingsAdmin(admin.ModelAdmin):
    list_display = ("__str__", "enabled", "allowed_types", "max_bytes")

    def has_add_permission(self, request) -> bool:
        return super().has_add_permission(request) and not AttachmentSettings.objects.exists()


from chat import widget_admin  # noqa: F401  (the widget and ticket pages)
