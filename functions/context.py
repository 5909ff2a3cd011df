"""The per-process state of the Function App: configuration, SDK clients and pacers, built once and shared.

Why shared and lazy: the Python worker runs invocations on a thread pool; clients hold connection pools and the pacer
must see every prediction call of the process to keep it inside the tier's calls per second. Built on first use (not
at import) so the host can index the functions even when a setting is wrong, and the first invocation then fails
with a message naming the setting. Rebuilt when the settings change (tests and `cvops function run-local` switch
them); a test or benchmark may :func:`install` a context with instrumented clients.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobServiceClient

from cvops import clients
from cvops.errors import ConfigurationError
from cvops.pacing import Pacer
from cvops.retry import RetryPolicy
from functions import moderation as moderation_api
from functions.config import APP_ROOT, AppConfig, StorageConnection, load_config, relevant_environment
from functions.exported_model import MAX_FILE_BYTES, ExportedModel, ModelRefused
from functions.model_loader import load_model as load_any_model

__all__ = ["AppContext", "build_context", "current", "install", "load_model", "reset"]

# Pace 2% under the configured rate, with bursts of up to 4 to catch up slots missed while every worker was busy
# with storage. Both are safe against a strict per-second counter because the pacer never sends more than the count
# within 1/(1 - 0.02) s (20 ms of arrival jitter at 20/s) and a 429 costs a short hold, not a whole second:
# see cvops.pacing.Pacer and bench/bench_function.py for the measurements.
PACER_HEADROOM = 0.02
PACER_BURST = 4


@dataclass
class AppContext:
    config: AppConfig
    blob_service: BlobServiceClient
    prediction: Any
    moderation: Any | None
    prediction_pacer: Pacer | None
    moderation_pacer: Pacer | None
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    exported: ExportedModel | None = None
    """CVOPS_MODEL's model: classification runs in-process (no Prediction API client, no pacer)."""


def _identity(client_id: str | None = None) -> Any:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=client_id) if client_id else DefaultAzureCredential()


def blob_service_for(storage: StorageConnection, **options: Any) -> BlobServiceClient:
    """The app's BlobServiceClient, on the same account and identity as its triggers."""
    if storage.connection_string:
        return clients.blob_service_client(connection_string=storage.connection_string, **options)
    return clients.blob_service_client(account_url=storage.blob_service_uri, credential=_identity(storage.client_id),
                                       **options)


def _pacer(calls_per_second: float) -> Pacer:
    return Pacer(calls_per_second, burst=PACER_BURST, headroom=PACER_HEADROOM)


def load_model(value: str, blob_service: BlobServiceClient, app_root: Path = APP_ROOT, *,
               classification: str | None = None, contract: str | None = None) -> ExportedModel:
    """CVOPS_MODEL's model: ``az://container/blob`` read with the app's storage identity, or a path in the app package.

    A file the runner cannot interpret is a configuration error naming the setting: nothing is routed by it. Custom
    Vision's export or AutoML's (functions/model_loader.py, ``contract`` when stated); ``classification`` is the
    policy's project type (a Multiclass model's probabilities must sum to 1; a Multilabel AutoML model takes sigmoid)."""
    try:
        if value.startswith("az://"):
            container, _, blob = value[len("az://"):].partition("/")
            if not container or not blob:
                raise ConfigurationError(f"app setting CVOPS_MODEL={value!r} is not az://container/blob",
                                         setting="CVOPS_MODEL", hint="e.g. az://models/model.zip")
            try:
                download = blob_service.get_blob_client(container, blob).download_blob()
                too_big = download.size > MAX_FILE_BYTES
                data = b"" if too_big else download.readall()
            except Exception as exc:  # azure-core's ResourceNotFoundError, HttpResponseError...
                raise ConfigurationError(f"app setting CVOPS_MODEL={value!r}: cannot read the blob: "
                                         f"{type(exc).__name__}", setting="CVOPS_MODEL",
                                         hint="upload the export there, and give the app's identity Storage Blob "
                                              "Data Reader on it") from exc
            if too_big:
                raise ModelRefused(f"the blob is {download.size:,} bytes, above the runner's limit of "
                                   f"{MAX_FILE_BYTES:,} for a model file")
            return load_any_model(data, classification=classification, contract=contract)
        path = Path(value)
        return load_any_model(path if path.is_absolute() else app_root / path, classification=classification,
                              contract=contract)
    except ModelRefused as exc:
        raise ConfigurationError(f"app setting CVOPS_MODEL={value!r}: {exc}", setting="CVOPS_MODEL",
                                 hint="set it to a Custom Vision ONNX export (cvops export --platform ONNX) or an Azure ML "
                                      "AutoML ONNX export (model.onnx + labels.json)") from exc


def build_context(config: AppConfig, *, blob_service: BlobServiceClient | None = None,
                  storage_options: Mapping[str, Any] | None = None,
                  retry_policy: RetryPolicy | None = None) -> AppContext:
    """Clients and pacers for ``config``; pass ``blob_service`` or ``storage_options`` to instrument storage, and
    ``retry_policy`` to bound retries differently (tests that must fail fast)."""
    # No key: the app's managed identity (one credential, so one token cache, for both services).
    in_process = bool(config.model)
    keyless = (not in_process and not config.prediction_key) or (config.moderation_enabled and not config.moderation_key)
    credential = _identity() if keyless else None
    prediction = None
    if not in_process:
        prediction = clients.prediction_client(config.prediction_endpoint, config.prediction_key or None,
                                               credential=None if config.prediction_key else credential)
    moderation = None
    if config.moderation_enabled:
        moderation = moderation_api.build_client(config.moderation_api, config.moderation_endpoint,
                                                 config.moderation_key, credential=credential)
    blob_service = blob_service or blob_service_for(config.storage, **dict(storage_options or {}))
    return AppContext(
        config=config,
        blob_service=blob_service,
        prediction=prediction,
        moderation=moderation,
        prediction_pacer=None if in_process else _pacer(config.prediction_tps),
        moderation_pacer=_pacer(config.moderation_tps) if moderation is not None else None,
        retry_policy=retry_policy or RetryPolicy(),
        exported=load_model(config.model, blob_service, classification=config.policy.classification_type,
                            contract=config.model_contract or None) if in_process else None,
    )


_lock = threading.Lock()
_cached: tuple[Any, AppContext] | None = None
_installed: AppContext | None = None


def current() -> AppContext:
    """The context for the current settings (built on first use, rebuilt when they change)."""
    global _cached
    if _installed is not None:
        return _installed
    key = relevant_environment()
    with _lock:
        if _cached is None or _cached[0] != key:
            _cached = (key, build_context(load_config()))
        return _cached[1]


def install(context: AppContext | None) -> None:
    """Pin a context (tests, benchmarks); ``None`` returns to building from the settings."""
    global _installed
    _installed = context


def reset() -> None:
    """Forget everything built so far."""
    global _cached, _installed
    with _lock:
        _cached = None
        _installed = None
