"""Real storage servers on loopback for the archive tests, started once per test session.

- S3: moto's standalone server (`moto_server`, from moto[server] in the dev extras).
- Azure Blob Storage: Azurite (`node_modules/.bin/azurite-blob`, installed by `make install`
  from package-lock.json) with in-memory persistence.

Both listen on a free port of 127.0.0.1 and are killed at the end of the session; their output
is in test-artifacts/. A missing binary fails the test (it is part of `make install`).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.serverprocs import (
    PROJECT_ROOT,
    ManagedProcess,
    child_env,
    free_port,
    start_process,
    wait_until,
)

# Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@dataclass(frozen=True)
class StorageServer:
    process: ManagedProcess
    endpoint: str


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[StorageServer]:
    binary = Path(sys.executable).parent / "moto_server"
    assert binary.exists(), f"{binary} is missing: run `make install` (moto[server])"
    port = free_port()
    process = start_process(
        "moto-s3", [str(binary), "-H", "127.0.0.1", "-p", str(port)], env=child_env()
    )
    try:
        wait_until(lambda: _listening(port), timeout=30, process=process, what="moto_server")
        yield StorageServer(process=process, endpoint=f"http://127.0.0.1:{port}")
    finally:
        process.kill()


@pytest.fixture(scope="session")
def azurite() -> Iterator[StorageServer]:
    binary = PROJECT_ROOT / "node_modules" / ".bin" / "azurite-blob"
    assert binary.exists(), f"{binary} is missing: run `make install` (npm ci)"
    port = free_port()
    process = start_process(
        "azurite-blob",
        [
            str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port),
            "--inMemoryPersistence", "--skipApiVersionCheck", "--loose", "--silent",
        ],
        env=child_env(),
    )
    try:
        wait_until(lambda: _listening(port), timeout=60, process=process, what="azurite-blob")
        yield StorageServer(
            process=process, endpoint=f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
        )
    finally:
        process.kill()


def make_s3_bucket(server: StorageServer, name: str) -> None:
    import boto3

    client = boto3.client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=name)


def s3_object(server: StorageServer, bucket: str, key: str) -> dict:
    import boto3

    client = boto3.client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    return client.get_object(Bucket=bucket, Key=key)


def make_azure_container(server: StorageServer, name: str) -> None:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={server.endpoint};"
    )
    service.create_container(name)
