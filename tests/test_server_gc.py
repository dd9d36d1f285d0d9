"""A server process runs the garbage collector's young passes at SERVER_GC_YOUNG_THRESHOLD."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from config import server_gc

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def thresholds():
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_tune_sets_the_young_threshold_and_keeps_the_older_ones(thresholds):
    gc.set_threshold(700, 11, 12)
    with override_settings(SERVER_GC_YOUNG_THRESHOLD=12_345):
        server_gc.tune()
    assert gc.get_threshold() == (12_345, 11, 12)


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    # A fresh interpreter with the project's settings, in the embedded default.
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    environ.update(SECRET_KEY="x", DJANGO_SETTINGS_MODULE="config.settings", **env)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True,
                          timeout=120, check=False)


def _after_loading(expression: str, **env: str) -> str:
    # Loading the ASGI application, as daphne does, then printing what the collector says.
    done = _python(f"import gc, config.asgi; print({expression})", **env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _server_thresholds(**env: str) -> str:
    return _after_loading("gc.get_threshold()", **env)


def test_loading_the_server_application_applies_it():
    assert _server_thresholds() == "(10000, 10, 10)"
    assert _server_thresholds(SERVER_GC_YOUNG_THRESHOLD="700") == "(700, 10, 10)"


def test_a_threshold_too_small_to_be_meant_is_refused():
    done = _python("import django; django.setup()", SERVER_GC_YOUNG_THRESHOLD="0")
    assert done.returncode != 0
    assert "SERVER_GC_YOUNG_THRESHOLD must be at least 100, got 0" in done.stderr


def _frozen_after_loading(**env: str) -> int:
    return int(_after_loading("gc.get_freeze_count()", **env))


def test_what_the_server_loaded_to_start_is_frozen_out_of_full_collections():
    # Django, the apps and the URL conf are well over 50,000 tracked objects; a full collection
    # that walks them again pauses every socket of the process (config/server_gc.py).
    assert _frozen_after_loading() > 50_000
    assert _frozen_after_loading(SERVER_GC_FREEZE_STARTUP="false") == 0
