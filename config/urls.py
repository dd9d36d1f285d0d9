from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

admin.site.site_header = "Coachline back office"
admin.site.site_title = "Coachline"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("compliance/", include("compliance.urls")),
    path("", include("reporting.urls")),
    path("", include("chat.urls")),
]
