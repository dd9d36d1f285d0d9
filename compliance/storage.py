"""The archive's storage: built from the ArchiveSettings row an administrator edits in admin.

Through django-storages: S3Storage (boto3) for Amazon S3 and S3-compatible services, AzureStorage
for Azure Blob Storage, Django's FileSystemStorage for the local default. Whatever the backend:
- objects are never overwritten (file_overwrite / overwrite_files / allow_overwrite off, and
  every object name is new: the archive adds the attempt and a random part);
- links expire within minutes (ArchiveSettings.link_expiry_seconds, at most 900);
- the endpoint is HTTPS unless the administrator marked it a local test endpoint on loopback.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage

from compliance.models import ArchiveSettings

_LOOPBACK_NAMES = {"localhost"}


class StorageNotConfigured(Exception):
    """The settings cannot make a safe storage (checked again here, not only in the form)."""


def endpoint_problem(url: str, *, local_test: bool) -> str:
    """Why this endpoint URL is refused, or "" if it is fine (empty means the provider's own)."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return ""
    if parts.scheme != "http":
        return "The endpoint must be an https:// URL."
    if not local_test:
        return (
            "The endpoint must use HTTPS. Plain HTTP is allowed only for a local test endpoint "
            "(tick “local test endpoint”)."
        )
    host = parts.hostname or ""
    if host in _LOOPBACK_NAMES:
        return ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return ""
    except ValueError:
        pass
    return "A plain-HTTP test endpoint must be on this machine (127.0.0.1, ::1 or localhost)."


def get_archive_settings() -> ArchiveSettings:
    """The settings row, or an unsaved one with the defaults (local filesystem)."""
    return ArchiveSettings.objects.filter(pk=1).first() or ArchiveSettings(pk=1)


def local_archive_dir() -> Path:
    return Path(settings.COMPLIANCE_ARCHIVE_DIR)


@dataclass(frozen=True)
class ArchiveStorage:
    storage: Storage
    backend: str
    link_expiry_seconds: int

    def link(self, name: str) -> str | None:
        """A link that expires, or None for the local filesystem (served through the app)."""
        if self.backend == ArchiveSettings.Backend.S3:
            return self.storage.url(name, expire=self.link_expiry_seconds)
        if self.backend == ArchiveSettings.Backend.AZURE:
            return self.storage.url(name, expire=self.link_expiry_seconds)
        return None


def build_storage(config: ArchiveSettings | None = None) -> ArchiveStorage:
    config = config or get_archive_settings()
    problem = endpoint_problem(config.endpoint_url, local_test=config.local_test_endpoint)
    if problem:
        raise StorageNotConfigured(problem)
    expiry = max(1, min(config.link_expiry_seconds, 900))
    prefix = config.key_prefix.strip("/")
    if config.backend == ArchiveSettings.Backend.S3:
        from storages.backends.s3 import S3Storage

        if not config.bucket:
            raise StorageNotConfigured("No bucket is set.")
        object_parameters: dict[str, str] = {}
        if config.server_side_encryption:
            object_parameters["ServerSideEncryption"] = config.server_side_encryption
            if config.server_side_encryption == ArchiveSettings.Encryption.KMS:
                object_parameters["SSEKMSKeyId"] = config.kms_key_id
        storage: Storage = S3Storage(
            bucket_name=config.bucket,
            endpoint_url=config.endpoint_url or None,
            region_name=config.region or None,
            access_key=config.access_key or None,
            secret_key=config.secret_key or None,
            location=prefix,
            file_overwrite=False,
            default_acl=None,
            querystring_auth=True,
            querystring_expire=expiry,
            object_parameters=object_parameters,
            # Path-style works with every S3-compatible service; virtual hosts need DNS for each.
            addressing_style="path" if config.endpoint_url else None,
            signature_version="s3v4",
        )
    elif config.backend == ArchiveSettings.Backend.AZURE:
        from storages.backends.azure_storage import AzureStorage

        if not config.bucket or not config.access_key:
            raise StorageNotConfigured("No container or account name is set.")
        endpoint = (
            config.endpoint_url.rstrip("/")
            or f"https://{config.access_key}.blob.core.windows.net"
        )
        scheme = urlsplit(endpoint).scheme
        connection_string = (
            f"DefaultEndpointsProtocol={scheme};AccountName={config.access_key};"
            f"AccountKey={config.secret_key};BlobEndpoint={endpoint};"
        )
        storage = AzureStorage(
            account_name=config.access_key,
            account_key=config.secret_key,
            azure_container=config.bucket,
            connection_string=connection_string,
            location=prefix,
            overwrite_files=False,
            expiration_secs=expiry,
            azure_ssl=scheme == "https",
        )
    else:
        storage = FileSystemStorage(location=local_archive_dir() / prefix, allow_overwrite=False)
    return ArchiveStorage(storage=storage, backend=config.backend, link_expiry_seconds=expiry)


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str


def test_connection(config: ArchiveSettings | None = None) -> ProbeResult:
    """Write, read back and delete a probe object; report what happened in plain words."""
    try:
        archive = build_storage(config)
    except StorageNotConfigured as exc:
        return ProbeResult(False, f"Not configured: {exc}")
    payload = secrets.token_hex(16).encode()
    step = "write"
    try:
        name = archive.storage.save(f"_probe/{secrets.token_hex(8)}.txt", ContentFile(payload))
        step = "read"
        with archive.storage.open(name, "rb") as fh:
            read_back = fh.read()
        if read_back != payload:
            return ProbeResult(False, "The probe object read back differs from what was written.")
        step = "delete"
        archive.storage.delete(name)
    except Exception as exc:  # noqa: BLE001 - any failure is the answer the administrator wants
        return ProbeResult(False, f"Could not {step} the probe object: {_short(exc)}")
    return ProbeResult(True, f"Wrote, read and deleted a probe object ({archive.backend}).")


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
