from __future__ import annotations

from typing import Any

from axes.admin import AccessAttemptAdmin as AxesAccessAttemptAdmin
from axes.models import AccessAttempt
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from compliance import access, audit, masking, selectors, services
from compliance.audit_export import can_read_audit_log
from compliance.lockout import AdminLoginForm
from compliance.models import (
    ArchiveSettings,
    AuditEntry,
    ContentSafetySettings,
    ConversationArchive,
    IPAllowRule,
    MaskingRule,
    MaskingSettings,
    PasswordPolicy,
    RemaskJob,
    RetentionPolicy,
    RoleSecurity,
)


class MaskingRuleForm(forms.ModelForm):
    # Not stored: lets an administrator see what a pattern does before saving or enabling it.
    try_text = forms.CharField(
        label="Try it on",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=(
            "Type sample text and press Save: the page shows the text masked by this pattern and "
            "the built-in detectors, and nothing is saved. Empty this box to save."
        ),
    )

    class Meta:
        model = MaskingRule
        fields = ("name", "pattern", "enabled", "live", "archive", "departments")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        sample = cleaned.get("try_text")
        if not sample or "pattern" not in cleaned:
            return cleaned
        try:
            pattern = masking.compile_rule_pattern(cleaned["pattern"])
        except masking.UnsafePattern:
            return cleaned  # the model's clean() reports it on the pattern field
        active = selectors.get_masking_policy(department_id=None, place="live")
        policy = masking.Policy(
            cards=active.cards,
            ssns=active.ssns,
            keep_last_four=active.keep_last_four,
            rules=(masking.Rule(name="draft", pattern=pattern),),
        )
        # A field error is the plain way to show the form again without saving anything.
        self.add_error("try_text", f"Preview, nothing saved: {masking.mask(sample, policy)}")
        return cleaned


@admin.register(MaskingRule)
class MaskingRuleAdmin(admin.ModelAdmin):
    form = MaskingRuleForm
    list_display = (
        "name",
        "pattern",
        "enabled",
        "live",
        "archive",
        "department_names",
        "updated_at",
    )
    list_filter = ("enabled", "live", "archive")
    search_fields = ("name", "pattern")
    filter_horizontal = ("departments",)
    readonly_fields = ("created_at", "updated_at")
    actions = ["apply_to_history"]

    @admin.action(description="Apply the archive rules to stored history (database and archive)")
    def apply_to_history(self, request: HttpRequest, queryset: QuerySet[MaskingRule]) -> None:
        from compliance import remask

        # One job applies every archive rule; the selected rule is noted for the record.
        job = remask.start_remask(user=request.user, rule=queryset.first())
        self.message_user(request, f"Re-masking job {job.pk} started; see Re-masking jobs.")

    def get_queryset(self, request: HttpRequest) -> QuerySet[MaskingRule]:
        return super().get_queryset(request).prefetch_related("departments")

    @admin.display(description="departments")
    def department_names(self, obj: MaskingRule) -> str:
        return ", ".join(d.name for d in obj.departments.all()) or "all"

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Departments are saved after the rule itself, so reload only once both are written.
        super().save_related(request, form, formsets, change)
        services.reload_masking_rules()

    def delete_model(self, request: HttpRequest, obj: MaskingRule) -> None:
        super().delete_model(request, obj)
        services.reload_masking_rules()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[MaskingRule]) -> None:
        super().delete_queryset(request, queryset)
        services.reload_masking_rules()


@admin.register(MaskingSettings)
class MaskingSettingsAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "keep_last_four_card_digits",
        "cards_live",
        "cards_archive",
        "ssns_live",
        "ssns_archive",
    )
    readonly_fields = ("updated_at",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not MaskingSettings.objects.exists()

    def has_delete_permission(
        self, request: HttpRequest, obj: MaskingSettings | None = None
    ) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: MaskingSettings, form: Any, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        services.reload_masking_rules()


# --- Audit log ------------------------------------------------------------------------------
# Read-only, for compliance officers and administrators; every look at it is itself audited.


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("id", "at", "actor_username", "role", "action", "target", "outcome", "source_ip")
    list_filter = ("outcome",)
    # Exact and prefix lookups only, so the searches use the indexes on a log of millions.
    search_fields = ("=actor_username", "=target", "^action")
    ordering = ("-id",)
    list_per_page = 100
    show_full_result_count = False
    fields = (
        "id", "at", "actor", "actor_username", "role", "source_ip", "action", "target", "outcome",
        "details", "prev_hash", "hash",
    )
    readonly_fields = fields

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_read_audit_log(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        self._audit_look(request, target="audit_log")
        return super().changelist_view(request, extra_context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        self._audit_look(request, target=f"audit_entry:{object_id}"[:255])
        return super().change_view(request, object_id, form_url, extra_context)

    def _audit_look(self, request: HttpRequest, *, target: str) -> None:
        allowed = self.has_view_permission(request)
        audit.record(
            action="audit.view",
            actor=request.user,
            role=audit.role_of(request.user),
            source_ip=request.META.get("REMOTE_ADDR") or None,
            target=target,
            outcome=AuditEntry.Outcome.SUCCESS if allowed else AuditEntry.Outcome.DENIED,
            details={"query": request.GET.dict()} if request.GET else {},
        )
        if not allowed:
            raise PermissionDenied


# --- Roles: two-factor per role ---------------------------------------------------------------


@admin.register(RoleSecurity)
class RoleSecurityAdmin(admin.ModelAdmin):
    list_display = ("group", "require_two_factor")
    list_editable = ("require_two_factor",)
    list_select_related = ("group",)
    readonly_fields = ("group",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # one row per role, created with the roles (migration 0004)

    def save_model(self, request: HttpRequest, obj: RoleSecurity, form: Any, change: bool) -> None:
        with transaction.atomic():
            obj.save(update_fields=["require_two_factor"])
            audit.record(
                action="role.two_factor.change",
                actor=request.user,
                role=audit.role_of(request.user),
                source_ip=request.META.get("REMOTE_ADDR") or None,
                target=f"role:{obj.group.name}",
                details={"require_two_factor": obj.require_two_factor},
            )


# --- Staff access policy: password rules, network allowlists, lockouts ------------------------


class _AuditedConfigAdmin(admin.ModelAdmin):
    """Saves and deletes go through the services, which audit them in the same transaction."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        services.save_access_setting(
            obj=obj, actor=request.user, source_ip=access.client_ip(request), created=not change
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.delete_access_setting(obj=obj, actor=request.user, source_ip=access.client_ip(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(PasswordPolicy)
class PasswordPolicyAdmin(_AuditedConfigAdmin):
    list_display = ("__str__", "min_length", "min_character_classes", "history_count", "expiry_days")
    readonly_fields = ("updated_at",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not PasswordPolicy.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class IPAllowRuleForm(forms.ModelForm):
    confirm_shutout = forms.BooleanField(
        required=False,
        label="Yes, shut out my current address",
        help_text="Needed only when this rule would refuse the address you are working from now.",
    )
    request: HttpRequest | None = None  # set by IPAllowRuleAdmin.get_form

    class Meta:
        model = IPAllowRule
        fields = ("network", "role", "description", "enabled")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.request is None or self.errors:
            return cleaned
        import ipaddress

        rules = [
            rule
            for pk, rule in (
                (pk, access.Rule(network=ipaddress.ip_network(net, strict=False), role=role))
                for pk, net, role in IPAllowRule.objects.filter(enabled=True).values_list(
                    "pk", "network", "role"
                )
            )
            if pk != self.instance.pk
        ]
        if cleaned.get("enabled"):
            try:
                network = ipaddress.ip_network(str(cleaned.get("network", "")).strip(), strict=False)
            except ValueError:
                return cleaned  # the model's clean() reports the bad network
            rules.append(access.Rule(network=network, role=cleaned.get("role", "")))
        ip = access.client_ip(self.request)
        refused_by = access.refusing_list(roles=access.roles_of(self.request.user), ip=ip, rules=rules)
        if refused_by is not None and not cleaned.get("confirm_shutout"):
            raise forms.ValidationError(
                f"Saving this rule would shut you out: your current address {ip or '(unknown)'} "
                f"would not be in the {refused_by} list. Tick the confirmation to save anyway."
            )
        return cleaned


@admin.register(IPAllowRule)
class IPAllowRuleAdmin(_AuditedConfigAdmin):
    form = IPAllowRuleForm
    list_display = ("network", "role", "description", "enabled", "updated_at")
    list_filter = ("role", "enabled")
    fields = ("network", "role", "description", "enabled", "confirm_shutout")

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"request": request})


# The admin's login takes the same per-username lock as the login page (compliance.lockout).
admin.site.login_form = AdminLoginForm

# django-axes' own admin for lockouts, with clearing audited.
if admin.site.is_registered(AccessAttempt):
    admin.site.unregister(AccessAttempt)


@admin.register(AccessAttempt)
class AuditedAccessAttemptAdmin(AxesAccessAttemptAdmin):
    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.clear_lockouts(
            attempts=AccessAttempt.objects.filter(pk=obj.pk),
            actor=request.user,
            source_ip=access.client_ip(request),
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        services.clear_lockouts(attempts=queryset, actor=request.user, source_ip=access.client_ip(request))


# --- Archive, storage, retention ------------------------------------------------------------


class ArchiveSettingsForm(forms.ModelForm):
    # Never rendered back: an empty box on save keeps the stored secret.
    secret_key = forms.CharField(
        label="Secret access key or account key",
        required=False,
        strip=False,
        max_length=500,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted, never shown again. Leave empty to keep the current one.",
    )

    class Meta:
        model = ArchiveSettings
        fields = (
            "backend", "key_prefix", "endpoint_url", "local_test_endpoint", "bucket", "region",
            "server_side_encryption", "kms_key_id", "access_key", "secret_key",
            "link_expiry_seconds", "conduit_mode",
        )

    def clean_secret_key(self) -> str:
        value = self.cleaned_data.get("secret_key") or ""
        if not value and self.instance.pk:
            stored = ArchiveSettings.objects.filter(pk=self.instance.pk).first()
            return stored.secret_key if stored else ""
        return value

    def clean_link_expiry_seconds(self) -> int:
        value = self.cleaned_data["link_expiry_seconds"]
        if not 1 <= value <= 900:
            raise forms.ValidationError("Links must expire within 15 minutes (1 to 900 seconds).")
        return value


@admin.register(ArchiveSettings)
class ArchiveSettingsAdmin(admin.ModelAdmin):
    form = ArchiveSettingsForm
    list_display = ("__str__", "backend", "bucket", "endpoint_url", "conduit_mode", "updated_at")
    readonly_fields = ("updated_at", "secret_is_set")
    actions = ["test_connection"]

    @admin.display(description="secret stored", boolean=True)
    def secret_is_set(self, obj: ArchiveSettings) -> bool:
        return bool(obj.secret_key)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not ArchiveSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ArchiveSettings, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # Field names only: the values may include the secret.
        audit.record(
            action="archive.settings_changed",
            actor=request.user,
            role=audit.role_of(request.user),
            source_ip=request.META.get("REMOTE_ADDR") or None,
            target="archive_settings",
            details={"changed": sorted(form.changed_data), "backend": obj.backend},
        )

    @admin.action(description="Test the connection (write, read and delete a probe object)")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[ArchiveSettings]) -> None:
        from compliance.storage import test_connection

        for config in queryset:
            result = test_connection(config)
            audit.record(
                action="archive.test_connection",
                actor=request.user,
                role=audit.role_of(request.user),
                source_ip=request.META.get("REMOTE_ADDR") or None,
                target="archive_settings",
                outcome=AuditEntry.Outcome.SUCCESS if result.ok else AuditEntry.Outcome.FAILURE,
                details={"backend": config.backend, "message": result.message},
            )
            self.message_user(
                request,
                f"Connection test {'passed' if result.ok else 'FAILED'}: {result.message}",
                level=messages.SUCCESS if result.ok else messages.ERROR,
            )


@admin.register(ConversationArchive)
class ConversationArchiveAdmin(admin.ModelAdmin):
    list_display = (
        "conversation_number", "department", "state", "backend", "location", "attempts",
        "short_error", "next_attempt_at", "legal_hold", "archived_at", "bodies_dropped_at",
        "purged_at",
    )
    list_filter = ("state", "legal_hold", "backend")
    list_select_related = ("department",)
    search_fields = ("=conversation_number",)
    ordering = ("-conversation_number",)
    raw_id_fields = ("conversation",)
    readonly_fields = (
        "conversation", "conversation_number", "department", "state", "backend", "location",
        "html_location", "checksum", "size", "attempts", "last_error", "next_attempt_at",
        "legal_hold", "archived_at", "bodies_dropped_at", "purged_at", "created_at", "updated_at",
    )
    actions = ["retry_now", "place_legal_hold", "release_legal_hold"]

    @admin.display(description="last error")
    def short_error(self, obj: ConversationArchive) -> str:
        return obj.last_error[:120]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConversationArchive]:
        # Whoever is given this page keeps to its departments (compliance officers see all).
        from compliance.roles import department_scope

        rows = super().get_queryset(request)
        scope = None if request.user.is_superuser else department_scope(request.user)
        return rows if scope is None else rows.filter(department_id__in=scope)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Archive now (failed or pending)")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[ConversationArchive]) -> None:
        from compliance import archive

        count = archive.retry_now(user=request.user, archive_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} archive(s) sent to be archived again.")

    @admin.action(description="Place a legal hold (never purge)")
    def place_legal_hold(self, request: HttpRequest, queryset: QuerySet[ConversationArchive]) -> None:
        from compliance import archive

        count = archive.set_legal_hold(
            user=request.user, archive_ids=list(queryset.values_list("pk", flat=True)), hold=True
        )
        self.message_user(request, f"Legal hold placed on {count} conversation(s).")

    @admin.action(description="Release the legal hold")
    def release_legal_hold(self, request: HttpRequest, queryset: QuerySet[ConversationArchive]) -> None:
        from compliance import archive

        count = archive.set_legal_hold(
            user=request.user, archive_ids=list(queryset.values_list("pk", flat=True)), hold=False
        )
        self.message_user(request, f"Legal hold released on {count} conversation(s).")


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    list_display = ("__str__", "department", "keep_days", "enabled", "updated_at")
    list_select_related = ("department",)
    readonly_fields = ("updated_at",)

    def save_model(self, request: HttpRequest, obj: RetentionPolicy, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit.record(
            action="retention.policy_changed",
            actor=request.user,
            role=audit.role_of(request.user),
            source_ip=request.META.get("REMOTE_ADDR") or None,
            target=f"retention_policy:{obj.pk}",
            details={
                "department_id": obj.department_id,
                "keep_days": obj.keep_days,
                "enabled": obj.enabled,
            },
        )

    def delete_model(self, request: HttpRequest, obj: RetentionPolicy) -> None:
        audit.record(
            action="retention.policy_deleted",
            actor=request.user,
            role=audit.role_of(request.user),
            target=f"retention_policy:{obj.pk}",
            details={"department_id": obj.department_id, "keep_days": obj.keep_days},
        )
        super().delete_model(request, obj)


@admin.register(RemaskJob)
class RemaskJobAdmin(admin.ModelAdmin):
    list_display = (
        "id", "rule", "requested_by", "state", "phase", "messages_changed", "archives_rewritten",
        "started_at", "finished_at",
    )
    list_select_related = ("rule", "requested_by")
    readonly_fields = (
        "rule", "requested_by", "state", "phase", "last_message_id", "last_archive_id",
        "messages_changed", "archives_rewritten", "started_at", "finished_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ContentSafetySettings)
class ContentSafetySettingsAdmin(admin.ModelAdmin):
    list_display = ("__str__", "block_copy_agent", "block_copy_visitor", "updated_at")
    readonly_fields = ("updated_at",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not ContentSafetySettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: ContentSafetySettings, form: Any, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        audit.record(
            action="content_safety.settings_changed",
            actor=request.user,
            role=audit.role_of(request.user),
            source_ip=request.META.get("REMOTE_ADDR") or None,
            target="content_safety_settings",
            details={
                "block_copy_agent": obj.block_copy_agent,
                "block_copy_visitor": obj.block_copy_visitor,
            },
        )
