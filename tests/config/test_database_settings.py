"""A sqlite:/// DATABASE_URL gets the embedded default's SQLite safety: IMMEDIATE transactions
and a wait for the write lock. Without them two writers at once (a request and an in-process
task) fail at once with "database is locked"; the browser tests' server runs on such a URL."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.serverprocs import PROJECT_ROOT, child_env


def test_a_sqlite_url_keeps_immediate_transactions(tmp_path) -> None:
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.DATABASES['default'].get('OPTIONS', {})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env=child_env(
            {
                "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
                "DJANGO_SETTINGS_MODULE": "config.settings",
            },
            unset=("REDIS_URL",),
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    options = json.loads(done.stdout.strip().splitlines()[-1])
    assert options == {"transaction_mode": "IMMEDIATE", "timeout": 20}
