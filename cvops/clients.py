"""Thin builders for the SDK clients cvops uses, configured the same way everywhere.

The Custom Vision and Computer Vision clients (msrest) get their own retries turned off: :mod:`cvops.retry` owns
retry and pacing, and msrest's would only add invisible sleeps (and none for 429 or POST anyway). Its status
force-list is emptied as well, so a 5xx on GET reaches the caller as the SDK's error with the response and its
``Retry-After`` instead of an opaque "too many 503 error responses". Storage clients keep azure-core's retry, but
modest: blob and queue calls are idempotent and azure-core handles their 5xx/timeouts well.

Endpoints are the only difference between Azure and the local services: pass the local URL and everything else is
the same code path.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from azure.cognitiveservices.vision.computervision import ComputerVisionClient
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.storage.blob import BlobClient, BlobSasPermissions, BlobServiceClient, generate_blob_sas
from azure.storage.queue import QueueServiceClient
from msrest.authentication import ApiKeyCredentials, CognitiveServicesCredentials

from cvops.errors import ConfigurationError

__all__ = [
    "blob_service_client",
    "computer_vision_client",
    "prediction_client",
    "queue_service_client",
    "read_only_blob_sas_url",
    "training_client",
]

# azure-core's defaults are 10 retries with a 0.8 s factor, which can hide an outage for minutes; 3 is plenty for
# Storage, whose errors are rare and short.
STORAGE_RETRY = {"retry_total": 3, "retry_backoff_factor": 0.5, "retry_backoff_max": 10}
# A user delegation key lives at most 7 days, and a SAS cannot outlive its key.
MAX_SAS_MINUTES = 7 * 24 * 60
# Tolerate a few minutes of clock skew between this machine and the service that uses the SAS.
_SAS_SKEW = timedelta(minutes=5)


def _endpoint(endpoint: str, what: str) -> str:
    """Check an endpoint is an http(s) URL and drop the trailing slash (the SDK appends '/customvision/...')."""
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ConfigurationError(
            f"The {what} endpoint is empty", setting=f"{what} endpoint",
            hint="Set it to the resource's endpoint, e.g. https://<name>.cognitiveservices.azure.com/ "
                 "(Azure portal > the resource > Keys and Endpoint).",
        )
    endpoint = endpoint.strip()
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"The {what} endpoint {endpoint!r} is not an http(s) URL", setting=f"{what} endpoint",
            hint="Use the full URL, e.g. https://<name>.cognitiveservices.azure.com/.",
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(
            f"The {what} endpoint must not have a query or fragment", setting=f"{what} endpoint",
            hint="Use only the scheme and host, e.g. https://<name>.cognitiveservices.azure.com/.",
        )
    return endpoint.rstrip("/")


def _key(key: str, what: str) -> str:
    if not isinstance(key, str) or not key.strip():
        raise ConfigurationError(
            f"The {what} key is empty", setting=f"{what} key",
            hint="Set it to one of the resource's keys (Azure portal > the resource > Keys and Endpoint).",
        )
    return key.strip()


def _no_msrest_retries(client: Any) -> Any:
    """cvops.retry owns retries: turn msrest's off, and let every status through to the SDK's error handling."""
    client.config.retry_policy.retries = 0
    client.config.retry_policy.policy.status_forcelist = []
    return client


def training_client(endpoint: str, key: str) -> CustomVisionTrainingClient:
    """A Custom Vision training client (API v3.4-preview as the SDK sends it) with msrest retries off."""
    credentials = ApiKeyCredentials(in_headers={"Training-key": _key(key, "Custom Vision training")})
    return _no_msrest_retries(CustomVisionTrainingClient(_endpoint(endpoint, "Custom Vision training"), credentials))


def prediction_client(endpoint: str, key: str) -> CustomVisionPredictionClient:
    """A Custom Vision prediction client (API v3.1) with msrest retries off."""
    credentials = ApiKeyCredentials(in_headers={"Prediction-key": _key(key, "Custom Vision prediction")})
    return _no_msrest_retries(
        CustomVisionPredictionClient(_endpoint(endpoint, "Custom Vision prediction"), credentials))


def computer_vision_client(endpoint: str, key: str) -> ComputerVisionClient:
    """A Computer Vision (Image Analysis 3.2) client with msrest retries off; used for adult/racy/gore scores."""
    credentials = CognitiveServicesCredentials(_key(key, "Computer Vision"))
    return _no_msrest_retries(ComputerVisionClient(_endpoint(endpoint, "Computer Vision"), credentials))


def _storage_client(cls: Any, what: str, connection_string: str | None, account_url: str | None,
                    credential: Any, options: dict[str, Any]) -> Any:
    options = {**STORAGE_RETRY, **options}
    if bool(connection_string) == bool(account_url):
        raise ConfigurationError(
            f"{what}: give exactly one of a connection string or an account URL",
            setting="connection_string/account_url",
            hint="Use a connection string locally (Azurite) and an account URL with managed identity in Azure.",
        )
    if connection_string:
        if credential is not None:
            raise ConfigurationError(
                f"{what}: a connection string already holds its credential; do not pass one too",
                setting="credential",
            )
        try:
            return cls.from_connection_string(connection_string, **options)
        except ValueError as exc:
            # The SDK's message may echo the string; it holds the account key, so it is not repeated here.
            raise ConfigurationError(
                f"{what}: the storage connection string is malformed", setting="connection string",
                hint="Copy it again from the storage account's 'Access keys' page, or use an account URL.",
            ) from exc
    _endpoint(account_url or "", f"{what} account")
    if credential is None:
        # Imported here: azure.identity is slow to import and unused when a connection string is given.
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return cls(account_url=account_url, credential=credential, **options)


def blob_service_client(*, connection_string: str | None = None, account_url: str | None = None,
                        credential: Any = None, **options: Any) -> BlobServiceClient:
    """A BlobServiceClient from a connection string, or from an account URL with ``credential``
    (``DefaultAzureCredential`` when omitted: managed identity in Azure, the developer's login locally).

    ``options`` go to the client (e.g. ``retry_total=0`` for replayed recordings).
    """
    return _storage_client(BlobServiceClient, "Blob Storage", connection_string, account_url, credential, options)


def queue_service_client(*, connection_string: str | None = None, account_url: str | None = None,
                         credential: Any = None, **options: Any) -> QueueServiceClient:
    """A QueueServiceClient, built like :func:`blob_service_client`."""
    return _storage_client(QueueServiceClient, "Queue Storage", connection_string, account_url, credential, options)


def read_only_blob_sas_url(blob_client: BlobClient, *, minutes: int = 60) -> str:
    """A short-lived, read-only URL for one blob, e.g. for Custom Vision to pull a training image itself.

    With an account key (connection string), an account-key SAS. With a token credential (managed identity),
    a user delegation SAS: it needs no key, and the identity needs the "Storage Blob Delegator" role (included in
    "Storage Blob Data Contributor/Reader"). Anything else (anonymous or an existing SAS) cannot sign: ConfigurationError.
    """
    if not isinstance(minutes, int) or not 1 <= minutes <= MAX_SAS_MINUTES:
        raise ConfigurationError(
            f"A SAS lifetime must be between 1 and {MAX_SAS_MINUTES} minutes, got {minutes!r}", setting="minutes",
            hint="Keep it short: long enough for the service to fetch the image, e.g. 60.",
        )
    now = datetime.now(UTC)
    start, expiry = now - _SAS_SKEW, now + timedelta(minutes=minutes)
    credential = blob_client.credential
    common = {
        "account_name": blob_client.account_name,
        "container_name": blob_client.container_name,
        "blob_name": blob_client.blob_name,
        "snapshot": blob_client.snapshot,
        "permission": BlobSasPermissions(read=True),
        "start": start,
        "expiry": expiry,
    }
    account_key = getattr(credential, "account_key", None)
    if account_key:
        sas = generate_blob_sas(account_key=account_key, **common)
    elif hasattr(credential, "get_token"):
        service = BlobServiceClient(
            account_url=f"{blob_client.scheme}://{blob_client.primary_hostname}", credential=credential,
            **STORAGE_RETRY)
        delegation_key = service.get_user_delegation_key(key_start_time=start, key_expiry_time=expiry)
        sas = generate_blob_sas(user_delegation_key=delegation_key, **common)
    else:
        raise ConfigurationError(
            f"Cannot sign a read URL for blob {blob_client.container_name}/{blob_client.blob_name}: "
            "the client has neither an account key nor a token credential",
            setting="credential",
            hint="Build the client from a connection string or with a managed identity (DefaultAzureCredential).",
        )
    url = blob_client.url
    return f"{url}{'&' if '?' in url else '?'}{sas}"
