from celery import shared_task

from chat import services


@shared_task(name="chat.tasks.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    """Beat runs this every few seconds in real mode: offer timeouts, departed visitors and agents."""
    return services.sweep()
