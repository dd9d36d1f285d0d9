from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Live chat"

    def ready(self) -> None:
        from django.db.models.signals import post_delete

        from chat import attachments, collab, pipeline
        from chat.models import Attachment

        # Only internal notes carry @tags: the others may take the event loop's path.
        pipeline.register_after_persist(collab.on_message_persisted, visibilities={"internal"})
        # A purged conversation (retention) takes its files with it.
        post_delete.connect(
            lambda sender, instance, **kwargs: attachments.delete_file_on_commit(instance),
            sender=Attachment,
            weak=False,
            dispatch_uid="chat.attachment_file_cleanup",
        )
