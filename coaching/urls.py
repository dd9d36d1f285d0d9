from django.urls import path

from coaching import views

app_name = "coaching"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("reviews/<int:review_id>/", views.review_detail, name="review"),
    path("reviews/<int:review_id>/scorecard/", views.scorecard, name="scorecard"),
    path("insight/canned/", views.canned_insight, name="canned_insight"),
    path("mock/", views.mock_chat, name="mock_chat"),
    path("mock/<int:mock_id>/review/", views.review_mock, name="review_mock"),
    path("live/", views.live, name="live"),
]
