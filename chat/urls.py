from django.urls import path

from chat import attachment_views, views, widget_views, workspace_views

urlpatterns = [
    path("", views.home, name="home"),
    path("chat/", views.visitor_page, name="visitor"),
    path("agent/", views.agent_page, name="agent"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("agent/transcripts/<int:conversation_id>/", workspace_views.transcript, name="agent_transcript"),
    path("agent/canned/", workspace_views.canned_list, name="agent_canned"),
    path("agent/canned/new/", workspace_views.canned_edit, name="agent_canned_new"),
    path("agent/canned/<int:pk>/", workspace_views.canned_edit, name="agent_canned_edit"),
    path("agent/canned/<int:pk>/delete/", workspace_views.canned_delete, name="agent_canned_delete"),
    path("agent/profile/", workspace_views.profile_page, name="agent_profile"),
    path("media/avatars/<str:name>", workspace_views.avatar_file, name="avatar_file"),
    path("agent/profile/avatar/remove/", workspace_views.avatar_remove, name="agent_avatar_remove"),
    path("widget/config/", widget_views.widget_config, name="widget_config"),
    path("widget/demo/", widget_views.widget_demo, name="widget_demo"),
    path("tickets/", widget_views.ticket_list, name="ticket_list"),
    path("tickets/<int:ticket_id>/", widget_views.ticket_detail, name="ticket_detail"),
    path("tickets/from-chat/", widget_views.ticket_from_chat, name="ticket_from_chat"),
    path("chat/attachments/", attachment_views.visitor_upload, name="attachment_visitor_upload"),
    path(
        "chat/attachments/<int:attachment_id>/<str:signature>/",
        attachment_views.visitor_download,
        name="attachment_visitor",
    ),
    path("agent/attachments/", attachment_views.staff_upload, name="attachment_staff_upload"),
    path("agent/attachments/<int:attachment_id>/", attachment_views.staff_download, name="attachment_staff"),
]
