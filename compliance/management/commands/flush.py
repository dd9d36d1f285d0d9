"""Django's flush, let past the audit log's TRUNCATE guard on PostgreSQL.

The trigger from compliance's `audit_log_append_only` migration refuses TRUNCATE of the audit
table unless the session has set `coachline.audit_truncate` to `allow`. flush empties every table
on purpose (a developer resetting a database, the test runner between transactional tests), so
it sets that for its own run and clears it after. UPDATE and DELETE stay refused regardless.
"""

from typing import Any

from django.core.management.commands.flush import Command as FlushCommand
from django.db import connections

TRUNCATE_SETTING = "coachline.audit_truncate"


class Command(FlushCommand):
    def handle(self, **options: Any) -> None:
        connection = connections[options["database"]]
        if connection.vendor != "postgresql":
            return super().handle(**options)
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config(%s, 'allow', false)", [TRUNCATE_SETTING])
        try:
            return super().handle(**options)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config(%s, '', false)", [TRUNCATE_SETTING])
