from django.urls import path

from compliance import views

app_name = "compliance"

urlpatterns = [
    path("audit/export/", views.audit_export_view, name="audit_export"),
    path("transcripts/<int:number>/", views.transcript_view, name="transcript"),
    path(
        "transcripts/<int:number>/download/",
        views.transcript_download,
        name="transcript_download",
    ),
]
