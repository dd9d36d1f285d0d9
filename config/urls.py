from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from compliance import auth_views as login_views
from compliance import otp_admin

admin.site.site_header = "Coachline back office"
admin.site.site_title = "Coachline"
otp_admin.install(admin.site)  # the back office behind two-factor

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", login_views.login_view, name="login"),  # password, then a code
    path("accounts/password/", include("compliance.password_urls")),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("compliance/", include("compliance.urls")),
    path("coaching/", include("coaching.urls")),
    path("", include("reporting.urls")),
    path("", include("chat.urls")),
]
