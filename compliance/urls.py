from django.urls import path

from compliance import auth_views, views

app_name = "compliance"

urlpatterns = [
    path("audit/export/", views.audit_export_view, name="audit_export"),
    path("login/code/", auth_views.login_code_view, name="login_code"),
    path("login/enrol/", auth_views.enrol_view, name="enrol"),
    path("login/enrol/qr.svg", auth_views.enrol_qr_view, name="enrol_qr"),
    path("session/", auth_views.session_view, name="session"),
    path("transcripts/<int:number>/", views.transcript_view, name="transcript"),
    path(
        "transcripts/<int:number>/download/",
        views.transcript_download,
        name="transcript_download",
    ),
]
