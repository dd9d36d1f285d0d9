from django.urls import path

from reporting import views

urlpatterns = [
    path("agent/my-stats/", views.my_stats, name="reporting-my-stats"),
]
