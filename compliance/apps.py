from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance"

    def ready(self) -> None:
        # Registered here rather than imported by chat: chat is the core and knows nothing of
        # compliance; the pipeline runs its filters before a message is stored or broadcast.
        from chat import hooks, pipeline
        from compliance import archive, services

        pipeline.register_text_filter(services.mask_chat_text)
        # An ended conversation's transcript goes to the archive (a Celery task, after commit).
        hooks.register_on_conversation_ended(archive.on_conversation_ended)
