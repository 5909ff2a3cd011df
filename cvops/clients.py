"""Thin builders for the SDK clients cvops uses, configured the same way everywhere.

The Custom Vision and Computer Vision clients (msrest) get their own retries turned off: :mod:`cvops.retry` owns
retry and pacing, and msrest's would only add invisible sleeps (and none for 429 or POST anyway). Its status
force-list is emptied as well, so a 5xx on GET reaches the caller as the SDK's error with the response and its
``Retry-After`` instead of an opaque "too many 503 error responses". Storage clients keep azure-core's retry, but
modest: blob and queue calls are idempotent and azure-core handles their 5xx/timeouts well.

Endpoints are the only difference between Azure and the local services: pass the local URL and everything else is
the same code path.

Keyless access: each Cognitive Services builder takes a key *or* an Entra ID token credential (no key: a managed
identity in Azure, the developer's ``az login`` locally, through ``DefaultAzureCredential``). The msrest-based SDKs
predate azure-core and only know msrest credentials, so :class:`TokenCredentialAuthentication` bridges the two.
Tokens only work on a resource's custom subdomain endpoint (``https://<name>.cognitiveservices.azure.com/``), not on
a regional one, and the identity needs a role on the resource (e.g. "Cognitive Services Custom Vision Deployment").
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from azure.cognitiveservices.vision.computervision import ComputerVisionClient
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.storage.blob import BlobClient, BlobSasPermissions, BlobServiceClient, generate_blob_sas
from azure.storage.queue import QueueServiceClient
from msrest.authentication import ApiKeyCredentials, Authentication, CognitiveServicesCredentials

from cvops.errors import ConfigurationError

__all__ = [
    "COGNITIVE_SERVICES_SCOPE",
    "TokenCredentialAuthentication",
    "blob_service_client",
    "computer_vision_client",
    "content_safety_client",
    "prediction_client",
    "queue_service_client",
    "read_only_blob_sas_url",
    "training_client",
]

# The Entra ID scope of every Cognitive Services resource (Custom Vision training and prediction, Computer Vision).
COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
# Ask for a new token this long before the current one expires, as azure-core's bearer token policy does.
TOKEN_REFRESH_MARGIN_SECONDS = 300
# The storage SDKs use their own ExponentialRetry, whose knobs are initial_backoff/increment_base/random_jitter_range
# (azure-core's retry_backoff_factor is ignored by them): its defaults (15 s + 3^n, 3 retries) kept a command waiting
# 85 s on an unreachable account. 3 retries at about 2, 2.8 and 3.9 s are plenty for Storage, whose errors are rare
# and short.
STORAGE_RETRY = {"retry_total": 3, "initial_backoff": 0.5, "increment_base": 1.5, "random_jitter_range": 0.5}
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


class TokenCredentialAuthentication(Authentication):
    """msrest authentication that sends ``Authorization: Bearer <token>`` from an azure-core ``TokenCredential``.

    msrest asks for a signed session before every request, so the token is kept and reused until
    :data:`TOKEN_REFRESH_MARGIN_SECONDS` before it expires (one ``get_token`` per hour, not per call; the lock keeps
    concurrent workers from all fetching at once). The token is never part of ``repr`` or of any log line: msrest's
    own request logging masks the Authorization header, and nothing here logs.
    """

    def __init__(self, credential: Any, scope: str = COGNITIVE_SERVICES_SCOPE, *,
                 clock: Callable[[], float] = time.time) -> None:
        if not callable(getattr(credential, "get_token", None)):
            raise ConfigurationError(
                f"A token credential must have get_token(scope), got {type(credential).__name__}",
                setting="credential",
                hint="Pass an azure.identity credential, e.g. DefaultAzureCredential() or ManagedIdentityCredential().",
            )
        self.credential = credential
        self.scope = scope
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_on = 0.0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.credential).__name__}, scope={self.scope!r})"

    def token(self) -> str:
        """A current access token, fetched again when it is about to expire."""
        with self._lock:
            if self._token is None or self._expires_on - self._clock() < TOKEN_REFRESH_MARGIN_SECONDS:
                access = self.credential.get_token(self.scope)
                self._token, self._expires_on = access.token, float(access.expires_on)
            return self._token

    def signed_session(self, session: Any = None) -> Any:
        session = super().signed_session(session)
        session.headers["Authorization"] = f"Bearer {self.token()}"
        return session


def _key(key: str, what: str) -> str:
    if not isinstance(key, str) or not key.strip():
        raise ConfigurationError(
            f"The {what} key is empty", setting=f"{what} key",
            hint="Set it to one of the resource's keys (Azure portal > the resource > Keys and Endpoint).",
        )
    return key.strip()


def _credentials(key: str | None, credential: Any, what: str, make_key_credentials: Callable[[str], Any]) -> Any:
    """The msrest credentials for a key, or for a token credential when there is no key (None or "")."""
    if key and credential is not None:
        raise ConfigurationError(
            f"The {what} client was given both a key and a token credential", setting=f"{what} key",
            hint="Use one: the key, or leave the key empty to sign in with the identity.",
        )
    if key is None or key == "":
        if credential is None:
            # Imported here: azure.identity is slow to import and unused when a key is given.
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        return TokenCredentialAuthentication(credential)
    return make_key_credentials(_key(key, what))


def _no_msrest_retries(client: Any) -> Any:
    """cvops.retry owns retries: turn msrest's off, and let every status through to the SDK's error handling."""
    client.config.retry_policy.retries = 0
    client.config.retry_policy.policy.status_forcelist = []
    return client


def training_client(endpoint: str, key: str | None = None, *, credential: Any = None) -> CustomVisionTrainingClient:
    """A Custom Vision training client (API v3.4-preview as the SDK sends it) with msrest retries off.

    With ``key``, the Training-Key header; with no key (None or ""), a bearer token from ``credential``
    (``DefaultAzureCredential`` when omitted).
    """
    what = "Custom Vision training"
    credentials = _credentials(key, credential, what, lambda k: ApiKeyCredentials(in_headers={"Training-key": k}))
    return _no_msrest_retries(CustomVisionTrainingClient(_endpoint(endpoint, what), credentials))


def prediction_client(endpoint: str, key: str | None = None, *,
                      credential: Any = None) -> CustomVisionPredictionClient:
    """A Custom Vision prediction client (API v3.1) with msrest retries off; key or token as for
    :func:`training_client`."""
    what = "Custom Vision prediction"
    credentials = _credentials(key, credential, what, lambda k: ApiKeyCredentials(in_headers={"Prediction-key": k}))
    return _no_msrest_retries(CustomVisionPredictionClient(_endpoint(endpoint, what), credentials))


def computer_vision_client(endpoint: str, key: str | None = None, *, credential: Any = None) -> ComputerVisionClient:
    """A Computer Vision (Image Analysis 3.2) client with msrest retries off, used for adult/racy/gore scores; key or
    token as for :func:`training_client`."""
    what = "Computer Vision"
    credentials = _credentials(key, credential, what, CognitiveServicesCredentials)
    return _no_msrest_retries(ComputerVisionClient(_endpoint(endpoint, what), credentials))


CONTENT_SAFETY_API_VERSION = "2024-09-01"
"""The Content Safety API version cvops calls: the newest GA one (the SDK 1.0.0 defaults to 2023-10-01; image analysis
is the same in both)."""


def content_safety_client(endpoint: str, key: str | None = None, *, credential: Any = None,
                          api_version: str = CONTENT_SAFETY_API_VERSION) -> Any:
    """An Azure AI Content Safety client (``azure-ai-contentsafety``) with azure-core's retries off (cvops.retry owns
    them); with ``key`` an ``AzureKeyCredential`` (the ``Ocp-Apim-Subscription-Key`` header), with no key a token
    credential for :data:`COGNITIVE_SERVICES_SCOPE` (``DefaultAzureCredential`` when omitted). azure-core takes the
    token credential as it is: no bridge is needed, unlike the msrest clients."""
    from azure.ai.contentsafety import ContentSafetyClient  # imported here: only deployments that moderate need it
    from azure.core.credentials import AzureKeyCredential

    what = "Content Safety"
    if key and credential is not None:
        raise ConfigurationError(
            f"The {what} client was given both a key and a token credential", setting=f"{what} key",
            hint="Use one: the key, or leave the key empty to sign in with the identity.",
        )
    if key:
        auth: Any = AzureKeyCredential(_key(key, what))
    else:
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        auth = credential
    return ContentSafetyClient(_endpoint(endpoint, what), auth, api_version=api_version, retry_total=0,
                               credential_scopes=[COGNITIVE_SERVICES_SCOPE])


_ENVIRONMENT_TLS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def storage_transport_options() -> dict[str, Any]:
    """A transport that does not re-read the environment on every request, when no proxy is configured.

    Why: requests' ``trust_env`` walks every environment variable for proxies and looks for ``~/.netrc`` on each
    request; measured, 0.5 ms of CPU a storage call, 1.5 ms an image routed. Without a proxy variable
    (``HTTP(S)_PROXY``, ``ALL_PROXY``, ``NO_PROXY``, ...) the client gets a transport with ``use_env_settings=False``
    that verifies TLS against the CA bundle the environment names (``REQUESTS_CA_BUNDLE``, then ``CURL_CA_BUNDLE``,
    as requests reads them), read once when the client is made, as every other setting is. With a proxy variable the
    SDK's default transport keeps honouring the environment exactly as before.
    """
    import urllib.request

    from azure.core.pipeline.transport import RequestsTransport

    if urllib.request.getproxies_environment():
        return {}
    bundle = next((os.environ[name] for name in _ENVIRONMENT_TLS if os.environ.get(name)), None)
    return {"transport": RequestsTransport(use_env_settings=False, connection_verify=bundle or True)}


def _storage_client(cls: Any, what: str, connection_string: str | None, account_url: str | None,
                    credential: Any, options: dict[str, Any]) -> Any:
    options = {**STORAGE_RETRY, **storage_transport_options(), **options}
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
