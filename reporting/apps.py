from django.apps import AppConfig


class ReportingConfig(AppConfig):
    name = "reporting"
    verbose_name = "Reporting"

    def ready(self) -> None:
        # chat knows nothing of reporting: it calls these hooks after commit, and the task
        # rebuilds the day of the conversation (a late survey updates the right day).
        from chat import hooks
        from reporting import tasks

        hooks.register_on_conversation_ended(_enqueue_refresh)
        hooks.register_on_survey_submitted(_enqueue_refresh)
        del tasks


def _enqueue_refresh(conversation_id: int) -> None:
    from reporting.tasks import refresh_conversation_day

    refresh_conversation_day.delay(conversation_id)
