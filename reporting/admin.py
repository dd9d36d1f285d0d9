from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from reporting import views
from reporting.models import ReportingSettings


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
            )
        ]
        return extra + super().get_urls()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not ReportingSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        # One row only: go straight to editing it.
        obj = ReportingSettings.load()
        return HttpResponseRedirect(
            reverse("admin:reporting_reportingsettings_change", args=[obj.pk])
        )
