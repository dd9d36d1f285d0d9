"""Shared by the compliance tests."""

from __future__ import annotations

import pytest

from compliance import selectors
from tests.compliance.storage_servers import azurite, moto_s3  # noqa: F401 - session fixtures


@pytest.fixture(autouse=True)
def _fresh_masking_cache():
    # Each test's database is rolled back, but the in-process masking snapshot would survive it;
    # drop it on both sides so no test sees another's rules.
    selectors.clear_masking_cache()
    yield
    selectors.clear_masking_cache()


@pytest.fixture
def tasks_run_here(settings, tmp_path):
    """Celery tasks run in the test's process (in real mode too) and archive into tmp_path."""
    from config.celery import app

    settings.COMPLIANCE_ARCHIVE_DIR = tmp_path / "archive"
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before
