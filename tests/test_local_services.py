"""The local stand-ins start on free ports, answer real HTTP, and are gone after they are stopped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

from devkit.local_services import AZURITE_ACCOUNT, AZURITE_KEY, running_azurite


def test_azurite_serves_a_blob_by_read_only_sas_url(blob_service: BlobServiceClient):
    container = blob_service.get_container_client("local-services-sas")
    container.create_container()
    container.upload_blob("a/b.txt", b"hello")
    sas = generate_blob_sas(AZURITE_ACCOUNT, "local-services-sas", "a/b.txt", account_key=AZURITE_KEY,
                            permission=BlobSasPermissions(read=True), expiry=datetime.now(UTC) + timedelta(minutes=5))
    url = f"{container.get_blob_client('a/b.txt').url}?{sas}"
    assert requests.get(url, timeout=5).content == b"hello"
    # Without the SAS the private blob is refused.
    assert requests.get(container.get_blob_client("a/b.txt").url, timeout=5).status_code in (401, 403, 404)


def test_azurite_process_is_gone_after_the_block(tmp_path):
    with running_azurite(log_dir=tmp_path) as azurite:
        process = azurite.process
        assert process.poll() is None
        client = BlobServiceClient.from_connection_string(azurite.connection_string)
        client.create_container("stopped-check")
        assert [c.name for c in client.list_containers()] == ["stopped-check"]
    assert process.poll() is not None
