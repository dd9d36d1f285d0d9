from celery import shared_task

from coaching import services


@shared_task(name="coaching.tasks.sample_conversation", ignore_result=True, acks_late=True)
def sample_conversation(conversation_id: int) -> int:
    """Idempotent: the unique (rule, conversation) constraint keeps a chat out of a queue twice."""
    return len(services.sample_conversation(conversation_id=conversation_id))


def enqueue_sampling(conversation_id: int) -> None:
    # Called by chat's hooks after commit, so the task always sees the ended chat or the survey.
    sample_conversation.delay(conversation_id)
