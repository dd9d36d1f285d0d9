"""Credentials in the database are encrypted at rest, never shown back, and keys can be rotated."""

from __future__ import annotations

import importlib
import io
import logging
from types import SimpleNamespace

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from chat.models import CrmLookup
from compliance import encryption
from compliance.models import ArchiveSettings, AuditEntry
from tests.auth import staff_client

pytestmark = pytest.mark.django_db

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def raw(table: str, column: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table}")
        (value,) = cursor.fetchone()
    return value


def test_archive_secret_and_crm_key_are_encrypted_in_the_column() -> None:
    ArchiveSettings.objects.create(backend="s3", bucket="b", access_key="AKIA", secret_key=SECRET)
    CrmLookup.objects.create(url_template="https://crm.example/?e={email}", api_key=SECRET)

    for table, column in (("compliance_archivesettings", "secret_key"), ("chat_crmlookup", "api_key")):
        stored = raw(table, column)
        assert SECRET not in stored and stored.startswith("fernet:")
    assert ArchiveSettings.objects.get().secret_key == SECRET
    assert CrmLookup.objects.get().api_key == SECRET
    # Nothing set stays nothing, so "is a secret stored?" keeps working.
    ArchiveSettings.objects.update(secret_key="")
    assert raw("compliance_archivesettings", "secret_key") == ""


def test_the_admin_takes_the_secret_and_never_shows_it_back(supervisor) -> None:
    client = staff_client(supervisor)
    form = {
        "backend": "s3", "key_prefix": "coachline", "endpoint_url": "", "bucket": "transcripts",
        "region": "eu-central-1", "server_side_encryption": "AES256", "kms_key_id": "",
        "access_key": "AKIAEXAMPLE", "secret_key": SECRET, "link_expiry_seconds": "300",
    }
    response = client.post(reverse("admin:compliance_archivesettings_add"), form)
    assert response.status_code == 302, response.content.decode()[:3000]
    stored = raw("compliance_archivesettings", "secret_key")
    assert SECRET not in stored and ArchiveSettings.objects.get().secret_key == SECRET

    page = client.get(reverse("admin:compliance_archivesettings_change", args=[1])).content.decode()
    assert SECRET not in page and stored not in page

    # Saving again with the box left empty keeps the secret.
    response = client.post(
        reverse("admin:compliance_archivesettings_change", args=[1]),
        {**form, "secret_key": "", "region": "eu-west-1"},
    )
    assert response.status_code == 302
    config = ArchiveSettings.objects.get()
    assert (config.region, config.secret_key) == ("eu-west-1", SECRET)
    assert not any(SECRET in str(e.details) for e in AuditEntry.objects.all())


@pytest.mark.parametrize(
    ("module", "table", "column"),
    [
        ("compliance.migrations.0008_encrypt_archive_secret", "compliance_archivesettings", "secret_key"),
        ("chat.migrations.0006_encrypt_crm_api_key", "chat_crmlookup", "api_key"),
    ],
)
def test_the_data_migration_encrypts_values_saved_in_plain_text(module, table, column) -> None:
    if table == "chat_crmlookup":
        CrmLookup.objects.create(url_template="https://crm.example/?e={email}")
    else:
        ArchiveSettings.objects.create()
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = %s", [SECRET])
    migration = importlib.import_module(module)
    # The functions use only the editor's connection (a real schema editor cannot be opened
    # inside a test's transaction on SQLite).
    editor = SimpleNamespace(connection=connection)
    migration.encrypt(None, editor)
    stored = raw(table, column)
    assert stored.startswith("fernet:") and SECRET not in stored
    assert encryption.decrypt(stored) == SECRET
    migration.encrypt(None, editor)  # running twice changes nothing
    assert raw(table, column) == stored
    migration.decrypt(None, editor)
    assert raw(table, column) == SECRET


def test_key_rotation(settings, caplog) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    ArchiveSettings.objects.create(backend="s3", bucket="b", access_key="AKIA", secret_key=SECRET)
    under_old = raw("compliance_archivesettings", "secret_key")

    # Step 1: the new key first, the old one still there; old values still read.
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    assert ArchiveSettings.objects.get().secret_key == SECRET
    # Step 2: re-encrypt everything with the new key.
    out = io.StringIO()
    call_command("rotate_field_encryption", stdout=out)
    assert "compliance.ArchiveSettings.secret_key: 1 re-encrypted" in out.getvalue()
    assert AuditEntry.objects.filter(action="config.encryption_rotated").exists()
    under_new = raw("compliance_archivesettings", "secret_key")
    assert under_new != under_old and Fernet(new.encode()).decrypt(under_new[7:].encode()) == SECRET.encode()
    # Step 3: the old key goes; everything still reads.
    settings.FIELD_ENCRYPTION_KEYS = [new]
    assert ArchiveSettings.objects.get().secret_key == SECRET

    # A key removed before rotating: the value reads as empty and says why in the log.
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with caplog.at_level(logging.ERROR, logger="compliance.encryption"):
        assert ArchiveSettings.objects.get().secret_key == ""
    assert "cannot be decrypted" in caplog.text


def test_without_keys_a_key_derived_from_secret_key_is_used(settings) -> None:
    settings.FIELD_ENCRYPTION_KEYS = []
    settings.SECRET_KEY = "first-secret-key-" + "x" * 40
    ArchiveSettings.objects.create(backend="s3", bucket="b", access_key="AKIA", secret_key=SECRET)
    # A SECRET_KEY rotated the Django way (old one in SECRET_KEY_FALLBACKS) still reads it.
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "second-secret-key-" + "y" * 40
    assert ArchiveSettings.objects.get().secret_key == SECRET


def test_bad_keys_stop_the_start(settings) -> None:
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    [error] = encryption.check_keys()
    assert error.id == "compliance.E001" and "FIELD_ENCRYPTION_KEYS" in error.msg
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    assert encryption.check_keys() == []
