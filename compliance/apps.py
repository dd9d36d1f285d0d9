from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance"

    def ready(self) -> None:
        # Registered here rather than imported by chat: chat is the core and knows nothing of
        # compliance; the pipeline runs its filters before a message is stored or broadcast.
        from chat import pipeline
        from compliance import services

        pipeline.register_text_filter(services.mask_chat_text)
