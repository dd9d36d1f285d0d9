"""The transcript archive: on the local filesystem (embedded default), S3 (moto's server) and
Azure Blob Storage (Azurite), each started on loopback by tests/compliance/storage_servers.py."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from chat.models import Message
from compliance import archive, services, storage
from compliance.models import ArchiveSettings, AuditEntry, ConversationArchive, MaskingRule
from tests.auth import staff_client
from tests.compliance.archive_helpers import HOSTILE_NAME, configure, ended_chat
from tests.compliance.storage_servers import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    make_azure_container,
    make_s3_bucket,
    s3_object,
)
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _tasks_run_here(settings, tmp_path):
    # The subject is the archive, not the broker: run its tasks in this process in both modes
    # (tests/realmode covers a real worker).
    from config.celery import app

    settings.COMPLIANCE_ARCHIVE_DIR = tmp_path / "archive"
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture
def archive_only_rule(db):
    # Agents may see these codes live; the records must not keep them.
    return MaskingRule.objects.create(
        name="codes", pattern=r"secret-\d+", live=False, archive=True
    )


def last(action: str) -> AuditEntry:
    return AuditEntry.objects.filter(action=action).order_by("-id").first()


def test_ended_chat_is_archived_locally_with_checksum_and_archive_masking(
    department, agent, archive_only_rule, django_capture_on_commit_callbacks, settings
):
    conversation = ended_chat(django_capture_on_commit_callbacks, department=department, agent=agent)

    record = ConversationArchive.objects.get(conversation_number=conversation.pk)
    assert record.state == "confirmed" and record.backend == "local" and record.attempts == 1
    stored = Path(settings.COMPLIANCE_ARCHIVE_DIR) / "coachline/transcripts" / record.location
    body = stored.read_bytes()
    assert hashlib.sha256(body).hexdigest() == record.checksum and len(body) == record.size
    document = json.loads(body)
    assert document["conversation"]["id"] == conversation.pk
    assert document["visitor"]["name"] == HOSTILE_NAME
    assert document["visitor"]["page_url"] == "https://shop.example/checkout?<b>=1"
    first = document["messages"][0]
    assert first["role"] == "visitor" and "XXXXXX-XXXX" in first["body"]
    assert "secret-4242" not in body.decode()
    # Live masking was off for the rule, so the database (what the agent saw) still has it.
    assert Message.objects.filter(conversation=conversation, body__contains="secret-4242").exists()
    assert [m["visibility"] for m in document["messages"][:2]] == ["public", "internal"]

    html = (stored.parent / Path(record.html_location).name).read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(" in html
    assert "<img" not in html and "&lt;img src=x" in html

    entry = last("archive.confirmed")
    assert entry.target == f"conversation:{conversation.pk}"
    assert entry.details["checksum"] == record.checksum


def test_s3_archive_is_encrypted_never_overwritten_and_linked_briefly(
    department, supervisor, moto_s3, django_capture_on_commit_callbacks, client
):
    make_s3_bucket(moto_s3, "transcripts-a")
    configure(
        backend="s3", endpoint_url=moto_s3.endpoint, local_test_endpoint=True,
        bucket="transcripts-a", region="us-east-1", access_key="testing", secret_key="testing",
        link_expiry_seconds=120,
    )
    conversation = ended_chat(django_capture_on_commit_callbacks, department=department)

    record = ConversationArchive.objects.get(conversation_number=conversation.pk)
    assert record.state == "confirmed" and record.backend == "s3"
    obj = s3_object(moto_s3, "transcripts-a", f"coachline/transcripts/{record.location}")
    assert obj["ServerSideEncryption"] == "AES256"
    assert hashlib.sha256(obj["Body"].read()).hexdigest() == record.checksum

    # Saving under a name that exists gives a new name; the first object is untouched.
    target = storage.build_storage()
    again = target.storage.save(record.location, ContentFile(b"not the transcript"))
    assert again != record.location
    still = s3_object(moto_s3, "transcripts-a", f"coachline/transcripts/{record.location}")
    assert hashlib.sha256(still["Body"].read()).hexdigest() == record.checksum

    staff_client(supervisor, client=client)
    response = client.get(reverse("compliance:transcript_download", args=[conversation.pk]))
    assert response.status_code == 302
    link = response["Location"]
    assert link.startswith(moto_s3.endpoint)
    assert parse_qs(urlsplit(link).query)["X-Amz-Expires"] == ["120"]
    with urllib.request.urlopen(link, timeout=10) as fetched:
        assert hashlib.sha256(fetched.read()).hexdigest() == record.checksum
    assert last("transcript.download").actor == supervisor


def test_a_user_not_allowed_gets_no_link_and_is_recorded(
    department, agent, django_capture_on_commit_callbacks, client
):
    conversation = ended_chat(django_capture_on_commit_callbacks, department=department)
    stranger = UserFactory(username="mallory")
    staff_client(stranger, client=client)
    assert client.get(reverse("compliance:transcript_download", args=[conversation.pk])).status_code == 404
    assert client.get(reverse("compliance:transcript", args=[conversation.pk])).status_code == 404
    assert last("transcript.view").outcome == "denied"
    assert last("transcript.download").outcome == "denied"


def test_failed_archive_is_visible_and_retried_until_it_works(
    department, supervisor, moto_s3, django_capture_on_commit_callbacks, client
):
    configure(
        backend="s3", endpoint_url=moto_s3.endpoint, local_test_endpoint=True,
        bucket="not-created-yet", region="us-east-1", access_key="testing", secret_key="testing",
    )
    conversation = ended_chat(django_capture_on_commit_callbacks, department=department)

    record = ConversationArchive.objects.get(conversation_number=conversation.pk)
    assert record.state == "failed" and record.attempts == 1
    assert "NoSuchBucket" in record.last_error
    assert record.next_attempt_at > timezone.now()
    assert last("archive.failed").outcome == "failure"

    staff_client(supervisor, client=client)
    page = client.get(reverse("admin:compliance_conversationarchive_changelist"), {"state": "failed"})
    assert str(conversation.pk).encode() in page.content and b"NoSuchBucket" in page.content

    # Not yet due: nothing happens. Due, but still broken: a second attempt, a longer pause.
    assert archive.retry_due_archives(now=timezone.now()) == 0
    archive.retry_due_archives(now=record.next_attempt_at)
    record.refresh_from_db()
    assert record.state == "failed" and record.attempts == 2

    make_s3_bucket(moto_s3, "not-created-yet")
    archive.retry_due_archives(now=record.next_attempt_at + timedelta(seconds=1))
    record.refresh_from_db()
    assert record.state == "confirmed" and record.attempts == 3 and record.last_error == ""


def test_azure_archive_through_azurite_with_expiring_link(
    department, supervisor, azurite, django_capture_on_commit_callbacks, client
):
    make_azure_container(azurite, "transcripts")
    configure(
        backend="azure", endpoint_url=azurite.endpoint, local_test_endpoint=True,
        bucket="transcripts", access_key=AZURITE_ACCOUNT, secret_key=AZURITE_KEY,
        server_side_encryption="",
    )
    conversation = ended_chat(django_capture_on_commit_callbacks, department=department)
    record = ConversationArchive.objects.get(conversation_number=conversation.pk)
    assert record.state == "confirmed" and record.backend == "azure", record.last_error

    staff_client(supervisor, client=client)
    response = client.get(reverse("compliance:transcript_download", args=[conversation.pk]))
    assert response.status_code == 302
    link = response["Location"]
    query = parse_qs(urlsplit(link).query)
    assert "sig" in query and "se" in query
    with urllib.request.urlopen(link, timeout=10) as fetched:
        assert hashlib.sha256(fetched.read()).hexdigest() == record.checksum
    # Without the signature the object is not readable.
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(link.split("?")[0], timeout=10)


def test_conduit_mode_keeps_no_bodies_and_reads_transcripts_back_from_storage(
    department, supervisor, django_capture_on_commit_callbacks, client
):
    configure(conduit_mode=True)
    conversation = ended_chat(django_capture_on_commit_callbacks, department=department)
    record = ConversationArchive.objects.get(conversation_number=conversation.pk)
    assert record.state == "confirmed" and record.bodies_dropped_at is not None
    assert not Message.objects.filter(conversation=conversation).exclude(body="").exists()
    conversation.refresh_from_db()
    assert conversation.subject == ""

    # A rule added after archiving still applies when the transcript is read back.
    MaskingRule.objects.create(name="codes", pattern=r"secret-\d+", live=False, archive=True)
    services.reload_masking_rules()  # as the admin's save does
    staff_client(supervisor, client=client)
    page = client.get(reverse("compliance:transcript", args=[conversation.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Read from the archive" in text
    assert "my code is XXXXXX-XXXX" in text and "secret-4242" not in text
    assert "&lt;script&gt;" in text and "<script>alert" not in text
    view = last("transcript.view")
    assert view.actor == supervisor and view.details == {"source": "archive"}


def test_transcript_with_a_tampered_object_is_refused(
    department, supervisor, django_capture_on_commit_callbacks, client, settings
):
    configure(conduit_mode=True)
    conversation = ended_chat(django_capture_on_commit_callbacks, department=department)
    record = ConversationArchive.objects.get(conversation_number=conversation.pk)
    stored = Path(settings.COMPLIANCE_ARCHIVE_DIR) / "coachline/transcripts" / record.location
    stored.write_bytes(stored.read_bytes().replace(b"Eve", b"Bob"))
    staff_client(supervisor, client=client)
    page = client.get(reverse("compliance:transcript", args=[conversation.pk]))
    assert page.status_code == 503 and b"does not match its checksum" in page.content
    assert last("transcript.view").outcome == "failure"


def test_endpoints_must_be_https_unless_a_local_test_endpoint(db):
    with pytest.raises(ValidationError, match="must use HTTPS"):
        configure(backend="s3", bucket="b", endpoint_url="http://minio.internal:9000")
    with pytest.raises(ValidationError, match="on this machine"):
        configure(
            backend="s3", bucket="b", endpoint_url="http://minio.internal:9000",
            local_test_endpoint=True,
        )
    with pytest.raises(ValidationError, match="within 15 minutes|link_expiry"):
        configure(backend="s3", bucket="b", link_expiry_seconds=3600)
    configure(backend="s3", bucket="b", endpoint_url="https://s3.example.com")
    config = ArchiveSettings.objects.get()
    config.endpoint_url = "http://s3.example.com"  # written around the form
    with pytest.raises(storage.StorageNotConfigured):
        storage.build_storage(config)


def test_admin_hides_the_secret_and_tests_the_connection(supervisor, moto_s3, client):
    make_s3_bucket(moto_s3, "probe-bucket")
    staff_client(supervisor, client=client)
    add = reverse("admin:compliance_archivesettings_add")
    form = {
        "backend": "s3", "key_prefix": "cl", "endpoint_url": moto_s3.endpoint,
        "local_test_endpoint": "on", "bucket": "probe-bucket", "region": "us-east-1",
        "server_side_encryption": "AES256", "kms_key_id": "", "access_key": "testing",
        "secret_key": "TopSecretValue123", "link_expiry_seconds": "300",
    }
    response = client.post(add, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert ArchiveSettings.objects.get().secret_key == "TopSecretValue123"

    change = reverse("admin:compliance_archivesettings_change", args=[1])
    page = client.get(change)
    assert page.status_code == 200 and b"TopSecretValue123" not in page.content
    # Saving without typing the secret again keeps it.
    form["secret_key"] = ""
    form["bucket"] = "probe-bucket"
    assert client.post(change, form).status_code == 302
    assert ArchiveSettings.objects.get().secret_key == "TopSecretValue123"

    changelist = reverse("admin:compliance_archivesettings_changelist")
    result = client.post(
        changelist, {"action": "test_connection", "_selected_action": ["1"]}, follow=True
    )
    assert "Connection test passed" in result.content.decode()
    assert last("archive.test_connection").outcome == "success"
    assert s3_list(moto_s3, "probe-bucket") == []  # the probe was deleted

    ArchiveSettings.objects.filter(pk=1).update(bucket="no-such-bucket")
    result = client.post(
        changelist, {"action": "test_connection", "_selected_action": ["1"]}, follow=True
    )
    assert "Connection test FAILED" in result.content.decode()
    assert last("archive.test_connection").outcome == "failure"


def s3_list(server, bucket: str) -> list[str]:
    import boto3

    client = boto3.client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_without_beat_the_next_ended_chat_retries_due_failures(
    department, moto_s3, django_capture_on_commit_callbacks, settings
):
    settings.CHAT_INPROCESS_SWEEPER = True  # the embedded default: no Celery beat
    configure(
        backend="s3", endpoint_url=moto_s3.endpoint, local_test_endpoint=True,
        bucket="late-bucket", region="us-east-1", access_key="testing", secret_key="testing",
    )
    first = ended_chat(django_capture_on_commit_callbacks, department=department)
    record = ConversationArchive.objects.get(conversation_number=first.pk)
    assert record.state == "failed"
    make_s3_bucket(moto_s3, "late-bucket")
    ConversationArchive.objects.filter(pk=record.pk).update(next_attempt_at=timezone.now())
    ended_chat(django_capture_on_commit_callbacks, department=department)
    record.refresh_from_db()
    assert record.state == "confirmed" and record.attempts == 2
