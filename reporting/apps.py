from django.apps import AppConfig, apps
from django.db import transaction
from django.db.models.signals import post_delete, post_save


class ReportingConfig(AppConfig):
    name = "reporting"
    verbose_name = "Reporting"

    def ready(self) -> None:
        # chat knows nothing of reporting: it calls these hooks after commit, and the task
        # rebuilds the day of the conversation (a late survey updates the right day).
        from chat import hooks
        from chat.models import Ticket
        from reporting import tasks

        hooks.register_on_conversation_ended(_enqueue_refresh)
        hooks.register_on_survey_submitted(_enqueue_refresh)
        # Late events that have no chat hook: a ticket made from a chat after it ended, and a
        # coaching review scored (or its score changed, or the review deleted) days later.
        post_save.connect(_ticket_saved, sender=Ticket, dispatch_uid="reporting-ticket-saved")
        post_delete.connect(_ticket_deleted, sender=Ticket, dispatch_uid="reporting-ticket-deleted")
        if apps.is_installed("coaching"):
            from coaching.models import Review

            post_save.connect(_review_saved, sender=Review, dispatch_uid="reporting-review-saved")
            post_delete.connect(
                _review_deleted, sender=Review, dispatch_uid="reporting-review-deleted"
            )
        del tasks


def _enqueue_refresh(conversation_id: int) -> None:
    from reporting.tasks import refresh_conversation_day

    refresh_conversation_day.delay(conversation_id)


def _refresh_after_commit(conversation_id: int | None) -> None:
    if conversation_id is not None:
        transaction.on_commit(lambda: _enqueue_refresh(conversation_id))


def _ticket_saved(sender, instance, created: bool = False, update_fields=None, **kwargs) -> None:
    # A status change or a reply does not change the count of tickets a chat led to.
    if created or update_fields is None or "conversation" in update_fields:
        _refresh_after_commit(instance.conversation_id)


def _ticket_deleted(sender, instance, **kwargs) -> None:
    _refresh_after_commit(instance.conversation_id)


def _review_saved(sender, instance, created: bool = False, update_fields=None, **kwargs) -> None:
    # Only the score counts: a new, unscored review or a status change leaves figures as they are.
    if created and instance.score is None:
        return
    if update_fields is not None and "score" not in update_fields:
        return
    _refresh_after_commit(instance.conversation_id)


def _review_deleted(sender, instance, **kwargs) -> None:
    # The instance may not know its stored score (deleted through a stale object): always.
    _refresh_after_commit(instance.conversation_id)
