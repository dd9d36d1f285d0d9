"""Fixtures of the canary tests. The real-mode test starts its own daphne processes, like
tests/realmode/; the others run Celery's tasks in-process so the archive, coaching samples and
metric e-mails exist to be searched in real mode too (no worker is running there)."""

from __future__ import annotations

import pytest

from compliance import selectors
from config.celery import app
from tests.realmode.conftest import realmode_env  # noqa: F401 - a fixture, used by name


@pytest.fixture
def eager_tasks():
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture(autouse=True)
def _fresh_masking_cache():
    # The in-process masking snapshot would outlive a test that changes the settings.
    selectors.clear_masking_cache()
    yield
    selectors.clear_masking_cache()
