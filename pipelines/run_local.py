"""`cvops function run-local`: run the Function App's triggers on this machine, against Azurite and the local service.

Why this exists: Azure Functions Core Tools cannot be installed here (it downloads the host binary from the internet)
and Azurite sends no Event Grid events, so nothing would ever call the blob trigger locally. This loop plays the host's
part and nothing more: it watches the incoming container (and the backlog queue), and calls the functions *registered
in function_app.py* through their binding objects (a ``BlobClient`` built by the blob extension's own converter,
``func.QueueMessage``), with the host's concurrency, retry and poison rules from host.json. The logic that runs is
the app's, not a copy.

Differences from the host, on purpose: a listing replaces Event Grid, so blobs already in the container when the loop
starts are delivered too (the handler's records make that harmless: a decided version is skipped); poisoned blobs are
reported and left in place instead of being written to ``webjobs-blobtrigger-poison``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
import azurefunctions.extensions.bindings.blob as sdk_blob
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy
from azurefunctions.extensions.base import Datum

from cvops import clients
from cvops.errors import ConfigurationError
from functions import naming
from functions.config import APP_ROOT, StorageConnection, load_config
from functions.context import blob_service_for
from functions.handler import RoutedBlob, observe
from functions.settings import STORAGE_CONNECTION
from pipelines import listing

__all__ = [
    "RunStats",
    "host_settings",
    "load_app",
    "load_local_settings",
    "registered_functions",
    "run_local",
    "trigger_client",
    "user_function",
]

log = logging.getLogger("cvops.run_local")

BLOB_FUNCTION = "route_new_blob"
QUEUE_FUNCTION = "route_backlog_blob"


@dataclass
class RunStats:
    """What the loop did: deliveries, how they ended, and the outcomes the handler reported.

    ``failed`` counts failed *attempts*, including those a later retry fixed; whether the run is ``ok`` depends only
    on how each blob and message *ended*: a transient failure the host's retry repaired is the normal working of
    at-least-once delivery, not a failed run, while a blob that is poisoned or whose last attempt failed is.
    """

    delivered: int = 0
    succeeded: int = 0
    failed: int = 0
    poisoned: list[str] = field(default_factory=list)
    queue_messages: int = 0
    outcomes: Counter = field(default_factory=Counter)
    duplicates: int = 0
    final: dict[str, bool] = field(default_factory=dict)  # "blob <name>" / "message <id>" -> its last attempt worked
    retried: set[str] = field(default_factory=set)  # keys with at least one failed attempt

    def attempt(self, key: str, worked: bool) -> None:
        """Note one attempt's result (call under the loop's lock); a key's latest attempt is its final state."""
        self.final[key] = worked
        if worked:
            self.succeeded += 1
        else:
            self.failed += 1
            self.retried.add(key)

    def forget(self, key: str) -> None:
        """The blob is gone (deleted or moved since it was listed): it has no final state to report."""
        self.final.pop(key, None)

    @property
    def unresolved(self) -> list[str]:
        """Blobs and messages whose last attempt failed (poisoned ones included)."""
        return sorted(key for key, worked in self.final.items() if not worked)

    @property
    def recovered(self) -> int:
        """Blobs and messages that failed at least once and then succeeded."""
        return sum(1 for key in self.retried if self.final.get(key))

    @property
    def ok(self) -> bool:
        """True when every blob and message ended well, however many attempts failed on the way."""
        return not self.unresolved and not self.poisoned

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "delivered": self.delivered, "succeeded": self.succeeded, "failed": self.failed,
                "recovered": self.recovered, "unresolved": self.unresolved, "poisoned": list(self.poisoned),
                "queue_messages": self.queue_messages, "outcomes": dict(self.outcomes), "duplicates": self.duplicates}


def load_local_settings(path: Path) -> dict[str, str]:
    """The ``Values`` of a local.settings.json, as the Functions host reads them; ConfigurationError if unusable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}", setting=str(path),
                                 hint="copy local.settings.example.json to local.settings.json and fill it in") from exc
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}", setting=str(path),
                                 hint="fix the JSON syntax") from exc
    values = data.get("Values") if isinstance(data, dict) else None
    if not isinstance(values, dict):
        raise ConfigurationError(f"{path} has no \"Values\" object", setting=str(path),
                                 hint="see local.settings.example.json for the layout")
    return {str(k): "" if v is None else str(v) for k, v in values.items()}


def host_settings(app_root: Path = APP_ROOT) -> dict[str, int]:
    """The host.json numbers the loop honours: blob parallelism and poison threshold, queue dequeue count."""
    extensions = json.loads((app_root / "host.json").read_text()).get("extensions", {})
    blobs, queues = extensions.get("blobs", {}), extensions.get("queues", {})
    return {"max_parallelism": int(blobs.get("maxDegreeOfParallelism", 8 * (os.cpu_count() or 1))),
            "poison_blob_threshold": int(blobs.get("poisonBlobThreshold", 5)),
            "max_dequeue_count": int(queues.get("maxDequeueCount", 5))}


def load_app(app_root: Path = APP_ROOT) -> func.FunctionApp:
    """function_app.py's ``app``, loaded from the app root as the host loads it (it is a script, not a package)."""
    with _load_lock:
        module = sys.modules.get("function_app")
        if module is None or Path(getattr(module, "__file__", "")).resolve().parent != app_root.resolve():
            module = _exec_app(app_root)
        return module.app


_load_lock = threading.Lock()


def _exec_app(app_root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("function_app", app_root / "function_app.py")
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"no function_app.py in {app_root}", setting="app_root")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["function_app"] = module
    return module


_registered: dict[int, dict[str, Any]] = {}


def registered_functions(app: func.FunctionApp) -> dict[str, Any]:
    """The app's functions by name (``azure.functions`` Function objects: bindings and the user function).

    ``get_functions()`` indexes the app once (a second call reports every name as a duplicate), as the worker does.
    """
    with _load_lock:
        if id(app) not in _registered:
            _registered[id(app)] = {f.get_function_name(): f for f in app.get_functions()}
        return _registered[id(app)]


def user_function(app: func.FunctionApp, name: str) -> Callable[..., Any]:
    """The Python function registered under ``name`` (what the worker calls)."""
    try:
        return registered_functions(app)[name].get_user_function()
    except KeyError:
        raise ConfigurationError(f"function_app.py registers no function named {name}",
                                 setting="function_app.py") from None


def trigger_client(container: str, name: str, *, blob_service=None) -> BlobClient:
    """What the Python worker hands a blob trigger typed ``BlobClient`` (``azurefunctions-extensions-bindings-blob``).

    The host sends the worker only the blob's coordinates (``model_binding_data``: the connection setting's name, the
    container, the blob name) and the extension's converter builds the client from the setting; this runs that same
    converter on the same data, so the function gets the object it gets in Azure. With an identity-based
    ``CVOPS_STORAGE__blobServiceUri`` the extension would use a managed identity, which a developer's machine does
    not have: ``blob_service`` (the app's own client, with ``DefaultAzureCredential``) then gives the client instead.
    """
    if STORAGE_CONNECTION not in os.environ and blob_service is not None:
        return blob_service.get_blob_client(container, name)
    content = json.dumps({"Connection": STORAGE_CONNECTION, "ContainerName": container, "BlobName": name})
    binding_data = _ModelBindingData(version="1.0", source="AzureStorageBlobs", content_type="application/json",
                                     content=content)
    return sdk_blob.BlobClientConverter.decode(Datum(type="model_binding_data", value=binding_data),
                                               trigger_metadata=None, pytype=sdk_blob.BlobClient)


@dataclass(frozen=True)
class _ModelBindingData:
    """The fields of the host's ``ModelBindingData`` message that the extension reads."""

    version: str
    source: str
    content_type: str
    content: str


def _queue_client(storage: StorageConnection, queue: str):
    options = {"message_encode_policy": BinaryBase64EncodePolicy(), "message_decode_policy": BinaryBase64DecodePolicy()}
    if storage.connection_string:
        service = clients.queue_service_client(connection_string=storage.connection_string)
    elif storage.queue_service_uri:
        service = clients.queue_service_client(account_url=storage.queue_service_uri)
    else:
        return None
    client = service.get_queue_client(queue, **options)
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


def _has_queue_endpoint(connection_string: str | None) -> bool:
    text = (connection_string or "").lower()
    return "queueendpoint=" in text or "usedevelopmentstorage=true" in text or "endpointsuffix=" in text


def run_local(*, settings: Mapping[str, str] | None = None, stop_event: threading.Event | None = None,
              poll_seconds: float = 1.0, concurrency: int | None = None, once: bool = False,
              backlog_queue: bool = True, app_root: Path = APP_ROOT,
              on_outcome: Callable[[RoutedBlob], None] | None = None) -> RunStats:
    """Deliver incoming blobs and backlog messages to the registered functions until ``stop_event`` is set
    (or after one full pass with ``once=True``); return what happened.

    ``settings`` (e.g. :func:`load_local_settings`) go into the environment first, as the host does with
    local.settings.json. ``concurrency`` defaults to what the Python worker uses (its thread pool: CPUs + 4, at most
    32) capped by host.json's blob ``maxDegreeOfParallelism``.
    """
    if settings:
        os.environ.update(settings)
    config = load_config()  # fail now, with the setting's name, rather than on the first blob
    host = host_settings(app_root)
    workers = concurrency or min(32, (os.cpu_count() or 1) + 4, host["max_parallelism"])
    app = load_app(app_root)
    blob_function, queue_function = user_function(app, BLOB_FUNCTION), user_function(app, QUEUE_FUNCTION)
    blob_service = blob_service_for(config.storage)
    lister = blob_service_for(config.storage, retry_total=0)  # pipelines.listing retries by itself, name by name
    queue = None
    if backlog_queue and (config.storage.queue_service_uri or _has_queue_endpoint(config.storage.connection_string)):
        queue = _queue_client(config.storage, config.backlog_queue)
    stop_event = stop_event or threading.Event()
    stats = RunStats()
    lock = threading.Lock()
    seen: dict[str, str] = {}
    attempts: Counter = Counter()

    def record(outcome: RoutedBlob) -> None:
        with lock:
            stats.outcomes[outcome.record["outcome"]] += 1
            stats.duplicates += int(outcome.duplicate)
        if on_outcome is not None:
            on_outcome(outcome)

    def deliver_blob(name: str, etag: str) -> None:
        key = f"blob {name}"
        try:
            blob_function(trigger_client(config.incoming.container, name, blob_service=blob_service))
        except ResourceNotFoundError:
            with lock:
                seen.pop(name, None)  # deleted or replaced since it was listed: the next listing decides
                stats.forget(key)
            return
        except Exception as exc:
            with lock:
                stats.attempt(key, False)
                attempts[(name, etag)] += 1
                if attempts[(name, etag)] >= host["poison_blob_threshold"]:
                    stats.poisoned.append(name)
                    log.error("%s/%s failed %d times, poisoned (the host would queue it on "
                              "webjobs-blobtrigger-poison): %s", config.incoming.container, naming.printable(name),
                              attempts[(name, etag)], exc)
                else:
                    seen.pop(name, None)  # retried on the next listing, like the host's retry
                    log.warning("%s/%s failed (attempt %d), will retry: %s", config.incoming.container, naming.printable(name),
                                attempts[(name, etag)], exc)
            return
        with lock:
            stats.attempt(key, True)

    def deliver_message(message: Any) -> None:
        body = message.content if isinstance(message.content, bytes) else str(message.content).encode()
        binding = func.QueueMessage(id=message.id, body=body, pop_receipt=message.pop_receipt)
        key = f"message {message.id}"
        try:
            queue_function(binding)
        except Exception as exc:
            with lock:
                stats.attempt(key, False)
            if message.dequeue_count >= host["max_dequeue_count"]:
                poison = _queue_client(config.storage, f"{config.backlog_queue}-poison")
                poison.send_message(body)
                queue.delete_message(message)
                with lock:
                    stats.poisoned.append(f"queue message {message.id}")
                log.error("backlog message %s failed %d times, moved to %s-poison: %s", message.id,
                          message.dequeue_count, config.backlog_queue, exc)
            else:
                log.warning("backlog message %s failed (attempt %d), will retry: %s", message.id,
                            message.dequeue_count, exc)
            return
        queue.delete_message(message)
        with lock:
            stats.attempt(key, True)

    with observe(record), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cvops-run-local") as pool:
        while True:
            futures: list[Future] = []
            for name, etag in _new_versions(lister, config.incoming.container, seen, lock):
                with lock:
                    stats.delivered += 1
                futures.append(pool.submit(deliver_blob, name, etag))
            if queue is not None:
                batch = min(32, workers * 4)
                for message in queue.receive_messages(messages_per_page=batch, visibility_timeout=60,
                                                      max_messages=batch):
                    with lock:
                        stats.queue_messages += 1
                    futures.append(pool.submit(deliver_message, message))
            wait(futures)
            if once and not futures:
                break
            if once:
                continue  # keep going until a pass finds nothing new (retries included)
            if stop_event.wait(poll_seconds):
                break
    return stats


def _new_versions(blob_service, container: str, seen: dict[str, str], lock: threading.Lock) -> Iterable[tuple[str, str]]:
    """Blobs whose (name, ETag) the loop has not delivered yet; marks them as delivered. A name the listing cannot
    carry (Azurite fails the whole page on a control character) is stepped over with a warning, not fatal."""
    for blob in listing.list_blobs(blob_service.get_container_client(container)):
        with lock:
            if seen.get(blob.name) == blob.etag:
                continue
            seen[blob.name] = blob.etag
        yield blob.name, blob.etag

