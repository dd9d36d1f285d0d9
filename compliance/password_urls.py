from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

# Django's own views: their forms run AUTH_PASSWORD_VALIDATORS (the policy), keep this session
# (update_session_auth_hash) and the validators end the others (compliance.passwords).
urlpatterns = [
    path(
        "change/",
        auth_views.PasswordChangeView.as_view(success_url=reverse_lazy("password_change_done")),
        name="password_change",
    ),
    path("change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
]
