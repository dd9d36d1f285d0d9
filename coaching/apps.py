from django.apps import AppConfig


class CoachingConfig(AppConfig):
    name = "coaching"
    verbose_name = "Coaching"

    def ready(self) -> None:
        # Chat knows nothing of coaching: it calls these hooks after commit, and coaching
        # decides from there which chats enter a reviewer's queue.
        from chat import hooks, oversight
        from coaching import access, tasks

        hooks.register_on_conversation_ended(tasks.enqueue_sampling)
        hooks.register_on_survey_submitted(tasks.enqueue_sampling)
        oversight.register_supervisor_scope(access.supervised_department_ids)
