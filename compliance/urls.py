from django.urls import path

from compliance import views

app_name = "compliance"

urlpatterns = [
    path("audit/export/", views.audit_export_view, name="audit_export"),
]
