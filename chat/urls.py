from django.urls import path

from chat import views

urlpatterns = [
    path("", views.home, name="home"),
    path("chat/", views.visitor_page, name="visitor"),
    path("agent/", views.agent_page, name="agent"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
]
