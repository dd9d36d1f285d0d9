"""Celery tasks of compliance: they take ids, call a service, and are safe to run twice."""

from __future__ import annotations

from celery import shared_task

from compliance import archive, retention


@shared_task(name="compliance.tasks.archive_conversation", ignore_result=True)
def archive_conversation(conversation_id: int) -> None:
    # No Celery retry here: a failure is recorded on the archive row (visible in admin) and
    # `retry_archives` below tries again with growing pauses, however long storage is down.
    archive.archive_conversation(conversation_id=conversation_id)


@shared_task(name="compliance.tasks.retry_archives", ignore_result=True)
def retry_archives() -> int:
    return archive.retry_due_archives()


@shared_task(name="compliance.tasks.purge_expired", ignore_result=True)
def purge_expired() -> int:
    return retention.purge_expired()


@shared_task(name="compliance.tasks.remask_history", ignore_result=True)
def remask_history(job_id: int) -> None:
    """One batch, then the next as a new task: a lost worker loses at most one batch's work."""
    from compliance import remask

    if not remask.run_batch(job_id=job_id):
        remask_history.delay(job_id)
