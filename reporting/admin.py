from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from reporting import schedules, views
from reporting.models import MetricReport, MetricReportSend, ReportingSettings
from reporting.tasks import send_metric_report


@admin.register(ReportingSettings)
class ReportingSettingsAdmin(admin.ModelAdmin):
    """The singleton settings; the dashboard hangs off its admin URLs (…/reportingsettings/dashboard/)."""

    list_display = ("__str__", "time_zone", "max_range_days")
    readonly_fields = ("dashboard",)

    @admin.display(description="Dashboard")
    def dashboard(self, obj: ReportingSettings) -> str:
        return format_html(
            '<a href="{}">Open the reporting dashboard</a>', reverse("admin:reporting_dashboard")
        )

    def get_urls(self):
        extra = [
            path(
                "dashboard/",
                self.admin_site.admin_view(views.dashboard),
                name="reporting_dashboard",
            ),
            path(
                "dashboard/conversations/",
                self.admin_site.admin_view(views.drilldown),
                name="reporting_drilldown",
            ),
        ]
        return extra + super().get_urls()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not ReportingSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        # One row only: go straight to editing it (after the permission check the list would do).
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        obj = ReportingSettings.load()
        return HttpResponseRedirect(
            reverse("admin:reporting_reportingsettings_change", args=[obj.pk])
        )


class MetricReportForm(forms.ModelForm):
    sections = forms.MultipleChoiceField(
        choices=MetricReport.SECTION_CHOICES, widget=forms.CheckboxSelectMultiple, required=False
    )

    class Meta:
        model = MetricReport
        fields = ("name", "enabled", "recipients", "frequency", "cron", "departments", "sections")

    def clean_recipients(self) -> str:
        return ", ".join(schedules.validate_recipients(self.cleaned_data.get("recipients", "")))

    def clean(self):
        data = super().clean()
        if data.get("frequency") == MetricReport.Frequency.CRON:
            cron = (data.get("cron") or "").strip()
            if not cron:
                self.add_error(
                    "cron", "Give a cron expression, or choose daily, weekly or monthly."
                )
            else:
                try:
                    schedules.parse_cron(cron)
                except ValidationError as exc:
                    self.add_error("cron", exc)
        return data


class MetricReportSendInline(admin.TabularInline):
    model = MetricReportSend
    extra = 0
    can_delete = False
    fields = readonly_fields = ("attempted_at", "recipients", "attempt", "success", "error")

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(MetricReport)
class MetricReportAdmin(admin.ModelAdmin):
    form = MetricReportForm
    list_display = ("name", "frequency", "enabled", "last_run_at", "last_send", "next_retry_at")
    readonly_fields = ("last_run_at", "next_retry_at", "retry_attempt")
    filter_horizontal = ("departments",)
    inlines = (MetricReportSendInline,)
    actions = ("send_now",)

    def save_model(self, request: HttpRequest, obj: MetricReport, form, change: bool) -> None:
        if not change:
            obj.owner = request.user
        super().save_model(request, obj, form, change)
        schedules.sync_schedule(report=obj)

    @admin.display(description="Last attempt")
    def last_send(self, obj: MetricReport) -> str:
        last = obj.sends.first()
        if last is None:
            return "–"
        state = "sent" if last.success else f"failed (attempt {last.attempt}): {last.error[:80]}"
        return f"{last.attempted_at:%Y-%m-%d %H:%M} {state}"

    @admin.action(description="Send the selected reports now")
    def send_now(self, request: HttpRequest, queryset) -> None:
        if not settings.CELERY_TASK_ALWAYS_EAGER:
            for report in queryset:
                send_metric_report.delay(report.pk)
            self.message_user(request, f"{queryset.count()} report(s) queued for sending.")
            return
        # Embedded default: sent here and now; a failure is recorded and retried by the
        # server's scheduler, and said here rather than ending in an error page.
        now = timezone.now()
        for report in queryset:
            if schedules.send_now(report_id=report.pk, now=now):
                self.message_user(request, f"“{report}” sent.")
            else:
                self.message_user(
                    request,
                    f"“{report}” could not be sent; see its attempts below. It is retried.",
                    level=messages.ERROR,
                )
