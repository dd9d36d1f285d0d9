"""Re-encrypt every stored credential with the newest key: step 2 of a key rotation.

1. Put a new key first in FIELD_ENCRYPTION_KEYS, keep the old ones after it, restart.
2. `manage.py rotate_field_encryption`.
3. Remove the old keys and restart.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from compliance import audit, encryption


class Command(BaseCommand):
    help = "Re-encrypt credentials stored in the database with the first FIELD_ENCRYPTION_KEYS key."

    def handle(self, *args: Any, **options: Any) -> None:
        rotated: dict[str, int] = {}
        quote = connection.ops.quote_name
        with transaction.atomic():
            for model in apps.get_models():
                for field in model._meta.concrete_fields:
                    if not isinstance(field, encryption.EncryptedTextField):
                        continue
                    table, column, pk = model._meta.db_table, field.column, model._meta.pk.column
                    count = 0
                    with connection.cursor() as cursor:
                        cursor.execute(
                            f"SELECT {quote(pk)}, {quote(column)} FROM {quote(table)}"
                        )
                        for row_pk, value in cursor.fetchall():
                            if not value:
                                continue
                            # Raises UnreadableSecret (nothing changed) if no key decrypts it.
                            new = encryption.rotate(value)
                            cursor.execute(
                                f"UPDATE {quote(table)} SET {quote(column)} = %s "
                                f"WHERE {quote(pk)} = %s",
                                [new, row_pk],
                            )
                            count += 1
                    rotated[f"{model._meta.label}.{field.name}"] = count
            audit.record(action="config.encryption_rotated", target="field_encryption", details=rotated)
        for name, count in sorted(rotated.items()):
            self.stdout.write(f"{name}: {count} re-encrypted")
