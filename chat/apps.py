from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Live chat"

    def ready(self) -> None:
        from chat import collab, pipeline

        pipeline.register_after_persist(collab.on_message_persisted)
