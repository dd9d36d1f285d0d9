"""The supervisor's back office for coaching. Saves and actions go through coaching.services."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from chat import readback
from chat.models import Message
from coaching import access, selectors, services
from coaching.models import Annotation, Criterion, Review, SamplingRule, Scenario, Scorecard


@admin.register(SamplingRule)
class SamplingRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "enabled", "mode", "percent", "score", "percent_of_rest", "daily_cap")
    list_filter = ("enabled", "mode")
    filter_horizontal = ("departments", "agents", "reviewers")
    raw_id_fields = ("canned_response",)
    fieldsets = (
        (None, {"fields": ("name", "enabled", "reviewers")}),
        ("Scope", {"fields": ("departments", "agents")}),
        ("Which chats", {"fields": ("mode", "percent", "score", "percent_of_rest")}),
        (
            "Extra conditions",
            {"fields": ("only_transferred", "min_wait_seconds", "canned_response")},
        ),
        ("Limits", {"fields": ("daily_cap",)}),
    )

    def has_module_permission(self, request) -> bool:
        return access.is_supervisor(request.user) and super().has_module_permission(request)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "reviewers":
            # Only someone with a review queue can receive reviews: an agent chosen here would
            # get reviews nobody could open.
            kwargs["queryset"] = access.possible_reviewers()
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class CriterionInline(admin.TabularInline):
    model = Criterion
    extra = 3
    fields = ("position", "label", "kind", "weight")


@admin.register(Scorecard)
class ScorecardAdmin(admin.ModelAdmin):
    list_display = ("name", "active")
    inlines = [CriterionInline]


@admin.register(Scenario)
class ScenarioAdmin(admin.ModelAdmin):
    list_display = ("title", "start_link")
    search_fields = ("title", "persona")

    @admin.display(description="Mock chat")
    def start_link(self, obj: Scenario) -> str:
        url = reverse("coaching:mock_chat") + f"?scenario={obj.pk}"
        return format_html('<a href="{}">Start a mock chat</a>', url)


class AnnotationInline(admin.StackedInline):
    model = Annotation
    extra = 1
    fields = ("message", "category", "comment", "canned_fitted")

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # annotations are added, not rewritten after the agent may have read them

    def get_formset(self, request, obj=None, **kwargs):
        request._coaching_review = obj  # for the message choices below
        return super().get_formset(request, obj, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "message":
            # The lines of this chat only, as the transcript above numbers them.
            review = getattr(request, "_coaching_review", None)
            kwargs["queryset"] = (
                Message.objects.filter(conversation_id=review.conversation_id)
                .select_related("conversation")
                .order_by("seq")
                if review is not None
                else Message.objects.none()
            )
            field = super().formfield_for_foreignkey(db_field, request, **kwargs)
            field.label_from_instance = _message_choice
            field.empty_label = "The whole chat"
            field.help_text = "Leave on 'The whole chat', or pick the line this is about."
            return field
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


def _message_choice(m: Message) -> str:
    marks = {"internal": " (internal)", "whisper": " (whisper)"}.get(m.visibility, "")
    canned = " [canned]" if (m.meta or {}).get("canned") else ""
    # Read back like every other transcript line: the archive's masking rules apply here too.
    body = readback.text(m.body, department_id=m.conversation.department_id)
    body = body if len(body) <= 70 else body[:69] + "…"
    return f"#{m.pk} {m.role}{marks}{canned}: {body}"


class ScoreFilter(admin.SimpleListFilter):
    title = "score"
    parameter_name = "score_band"

    def lookups(self, request, model_admin):
        return [
            ("none", "Not scored"),
            ("low", "Below 60"),
            ("mid", "60 to 85"),
            ("high", "85 and above"),
        ]

    def queryset(self, request, queryset):
        bands = {
            "none": {"score__isnull": True},
            "low": {"score__lt": 60},
            "mid": {"score__gte": 60, "score__lt": 85},
            "high": {"score__gte": 85},
        }
        return queryset.filter(**bands[self.value()]) if self.value() in bands else queryset


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    """The review queue: each supervisor sees the reviews assigned to it (superusers: all)."""

    list_display = (
        "conversation",
        "agent",
        "department",
        "rule",
        "reviewer",
        "status",
        "score",
        "created_at",
    )
    list_filter = ("status", "agent", "conversation__department", "rule", ScoreFilter)
    list_select_related = ("conversation__department", "agent", "rule", "reviewer")
    fields = (
        "conversation",
        "agent",
        "rule",
        "by_hand",
        "reviewer",
        "status",
        "transcript",
        "summary",
        "scorecard",
        "score",
        "shared_at",
        "acknowledged_at",
        "agent_reply",
        "replied_at",
    )
    readonly_fields = (
        "conversation",
        "agent",
        "rule",
        "by_hand",
        "reviewer",
        "status",
        "transcript",
        "scorecard",
        "score",
        "shared_at",
        "acknowledged_at",
        "agent_reply",
        "replied_at",
    )
    inlines = [AnnotationInline]
    actions = ["share_with_agent"]
    change_form_template = "coaching/admin/review_change_form.html"

    def get_queryset(self, request):
        return selectors.reviews_for_supervisor(user=request.user)

    def has_add_permission(self, request) -> bool:
        return False  # reviews come from sampling rules

    @admin.display(description="Department")
    def department(self, obj: Review) -> str:
        return obj.conversation.department.name

    @admin.display(description="Transcript")
    def transcript(self, obj: Review) -> SafeString:
        return SafeString(
            render_to_string(
                "coaching/transcript.html",
                {
                    "lines": selectors.transcript(review=obj),
                    "chat_annotations": obj.annotations.filter(message__isnull=True),
                },
            )
        )

    def save_model(self, request, obj, form, change) -> None:
        if "summary" in form.changed_data:
            services.write_summary(user=request.user, review_id=obj.pk, summary=obj.summary)
        else:
            services.start_review(user=request.user, review_id=obj.pk)

    def save_formset(self, request, form, formset, change) -> None:
        # Annotations go through the service (it checks the message belongs to this chat); the
        # admin's change message reads what a formset save would have set.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for f in formset.forms:
            if (
                not f.has_changed()
                or f.instance.pk
                or not f.cleaned_data
                or f.cleaned_data.get("DELETE")
            ):
                continue
            data = f.cleaned_data
            try:
                annotation = services.annotate(
                    user=request.user,
                    review_id=form.instance.pk,
                    category=data["category"],
                    comment=data["comment"],
                    message_id=data["message"].pk if data.get("message") else None,
                    canned_fitted=data.get("canned_fitted"),
                )
            except ValidationError as exc:
                self.message_user(request, "; ".join(exc.messages), level=messages.ERROR)
            else:
                formset.new_objects.append(annotation)

    @admin.action(description="Share the selected reviews with their agents")
    def share_with_agent(self, request, queryset) -> None:
        for review in queryset:
            services.share_review(user=request.user, review_id=review.pk)
        self.message_user(request, f"Shared {queryset.count()} review(s).")
