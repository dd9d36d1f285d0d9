"""Credentials kept in the database (archive storage keys, the CRM API key) encrypted at rest.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) with the keys of the setting
FIELD_ENCRYPTION_KEYS, newest first: the first encrypts, every one decrypts, so keys can be
rotated without downtime (README, "Encryption of stored credentials"). Without the setting one
key is derived from SECRET_KEY (and one from each of SECRET_KEY_FALLBACKS, for reading), with
HKDF, so the embedded default works with nothing to configure.

Stored values are "fernet:" followed by the token, so a value written before encryption existed
(plain text, no prefix) is still read, and the data migrations and `manage.py
rotate_field_encryption` can tell the two apart. Pure Python with no imports from other apps.
"""

from __future__ import annotations

import base64
import logging
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

logger = logging.getLogger(__name__)

PREFIX = "fernet:"
_HKDF_INFO = b"coachline field encryption v1"


def derive_key(secret: str) -> bytes:
    """A Fernet key from a Django SECRET_KEY (HKDF-SHA256; the secret is long and random)."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        secret.encode()
    )
    return base64.urlsafe_b64encode(raw)


def _keys() -> tuple[bytes, ...]:
    configured = tuple(k.encode() for k in getattr(settings, "FIELD_ENCRYPTION_KEYS", ()) if k)
    if configured:
        return configured
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())]
    return tuple(derive_key(s) for s in secrets if s)


@lru_cache(maxsize=4)
def _fernet(keys: tuple[bytes, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS must hold Fernet keys (32 url-safe base64-encoded bytes, as "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'` "
            "prints them), separated by commas, newest first."
        ) from exc


def fernet() -> MultiFernet:
    return _fernet(_keys())


def check_keys(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """A system check (runs before the server, migrate and every management command)."""
    from django.core.checks import Error

    try:
        fernet()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="compliance.E001")]
    return []


def is_encrypted(value: str) -> bool:
    return value.startswith(PREFIX)


def encrypt(value: str) -> str:
    """The stored form of a secret; "" stays "" (nothing set)."""
    if not value or is_encrypted(value):
        return value
    return PREFIX + fernet().encrypt(value.encode()).decode()


class UnreadableSecret(Exception):
    """A stored secret none of the configured keys decrypts (a key was removed too early)."""


def decrypt(value: str) -> str:
    if not value or not is_encrypted(value):
        return value  # empty, or written before encryption (the data migration encrypts these)
    try:
        return fernet().decrypt(value[len(PREFIX) :].encode()).decode()
    except InvalidToken as exc:
        raise UnreadableSecret(
            "A stored credential cannot be decrypted with FIELD_ENCRYPTION_KEYS (or SECRET_KEY): "
            "put the old key back at the end of the list, or enter the credential again."
        ) from exc


def rotate(value: str) -> str:
    """Re-encrypt with the newest key (plain text from before encryption gets encrypted)."""
    if not value:
        return value
    if not is_encrypted(value):
        return encrypt(value)
    return PREFIX + fernet().rotate(value[len(PREFIX) :].encode()).decode()


class EncryptedTextField(models.TextField):
    """A text column holding a secret encrypted; Python code sees the plain value.

    Not searchable or filterable (every encryption of the same value differs). A value that
    cannot be decrypted reads as "" and is logged, so the admin page still opens and the
    administrator can enter the credential again; whatever uses it fails visibly (the archive
    records a failed attempt, the CRM panel shows no data).
    """

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None:
            return value
        try:
            return decrypt(value)
        except UnreadableSecret:
            logger.error(
                "%s.%s cannot be decrypted with the configured keys; it reads as empty",
                self.model._meta.label,
                self.name,
            )
            return ""

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return encrypt(value) if isinstance(value, str) else value


def encrypt_column(schema_editor: Any, *, table: str, column: str, reverse: bool = False) -> None:
    """For data migrations: encrypt (or, going back, decrypt) every value of one column.

    Raw SQL, because a historical model's field would run these values through the field's own
    conversions.
    """
    connection = schema_editor.connection
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {quote('id')}, {quote(column)} FROM {quote(table)}")
        rows = cursor.fetchall()
        for pk, value in rows:
            if not value:
                continue
            new = decrypt(value) if reverse else encrypt(value)
            if new != value:
                cursor.execute(
                    f"UPDATE {quote(table)} SET {quote(column)} = %s WHERE {quote('id')} = %s",
                    [new, pk],
                )
