"""The embedded default's beat: scheduled metric e-mails and today's refresh, inside the server.

With `make run` there is one process (daphne) and no Celery beat. This thread, started with the
server (config/asgi.py), does what beat does in real mode: every
REPORTING_SCHEDULER_INTERVAL_SECONDS it sends the metric e-mails whose crontab came due (and failed sends whose retry is due), and
every five minutes it recomputes today's and yesterday's figures. Sends are claimed with a
conditional update, so two processes (or this thread and `manage.py send_due_reports` from cron)
never send the same run twice. Off in real mode (REDIS_URL set): beat and the worker do it there.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

log = logging.getLogger(__name__)
_lock = threading.Lock()
_thread: threading.Thread | None = None
REFRESH_SECONDS = 300


def start() -> bool:
    """Start the thread once per process (if the setting allows); True if this call started it."""
    global _thread
    if (_thread is not None and _thread.is_alive()) or not settings.REPORTING_INPROCESS_SCHEDULER:
        return False
    with _lock:
        if _thread is not None and _thread.is_alive():
            return False
        _thread = threading.Thread(target=_loop, name="reporting-scheduler", daemon=True)
        _thread.start()
    log.info(
        "reporting scheduler started in this process (every %s s)",
        settings.REPORTING_SCHEDULER_INTERVAL_SECONDS,
    )
    return True


def start_with_server() -> None:
    """Called when config/asgi.py is imported: start right away under daphne (`make run`), so
    e-mails go out even if nobody opens a page; other importers (tests) start nothing here."""
    if "daphne" in sys.argv[0]:
        start()


def tick(*, now=None, refresh: bool = False) -> dict[str, int]:
    """One round: due and retry-due reports, and (refresh=True) today's figures."""
    from reporting import schedules, services

    now = now or timezone.now()
    done = schedules.send_due(now=now)
    if refresh:
        services.recompute_today(now=now)
    return done


def _loop() -> None:
    last_refresh = time.monotonic()
    while True:
        time.sleep(settings.REPORTING_SCHEDULER_INTERVAL_SECONDS)
        refresh = time.monotonic() - last_refresh >= REFRESH_SECONDS
        try:
            tick(refresh=refresh)
        except Exception:  # one failed round must not stop the next
            log.exception("reporting scheduler round failed")
        finally:
            close_old_connections()
        if refresh:
            last_refresh = time.monotonic()
