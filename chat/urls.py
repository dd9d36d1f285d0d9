from django.urls import path

from chat import views, widget_views

urlpatterns = [
    path("", views.home, name="home"),
    path("chat/", views.visitor_page, name="visitor"),
    path("agent/", views.agent_page, name="agent"),
    path("healthz", views.healthz, name="healthz"),
    path("widget/config/", widget_views.widget_config, name="widget_config"),
    path("widget/demo/", widget_views.widget_demo, name="widget_demo"),
    path("tickets/", widget_views.ticket_list, name="ticket_list"),
    path("tickets/<int:ticket_id>/", widget_views.ticket_detail, name="ticket_detail"),
    path("tickets/from-chat/", widget_views.ticket_from_chat, name="ticket_from_chat"),
]
