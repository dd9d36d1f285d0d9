"""Demo data for the widget, loaded by `manage.py seed_demo` (idempotent): a survey question, the
pre-chat settings of Patient support and an invitation on the demo shop's pricing page."""

from __future__ import annotations

from chat.models import Department, InvitationRule, SurveyQuestion, WidgetDepartmentSettings


def seed_widget_demo(*, support: Department) -> None:
    SurveyQuestion.objects.get_or_create(
        key="solved", defaults={"text": "Was your question answered?"}
    )
    WidgetDepartmentSettings.objects.get_or_create(
        department=support, defaults={"require_name": True}
    )
    InvitationRule.objects.get_or_create(
        name="Demo shop pricing page",
        defaults={
            "department": support,
            "url_pattern": "*/widget/demo/?page=pricing*",
            "seconds_on_page": 5,
            "message": "Questions about our prices? We are happy to help.",
        },
    )
