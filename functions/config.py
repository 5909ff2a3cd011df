"""The Function App's configuration, read once from the app settings and checked as a whole.

Why check everything together at start: a wrong container name, a policy typo, moderation bands without a
moderation endpoint, or an output container equal to the input (every copy would trigger the function again) must
stop the app with one message naming the setting, not surface one blob at a time hours later.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cvops.errors import ConfigurationError
from cvops.redaction import check_connection_string, register_secret
from functions import routes, settings
from functions.model_loader import CONTRACTS as MODEL_CONTRACTS
from functions.naming import Location, check_disjoint
from functions.policy import COMPUTER_VISION, CONTENT_SAFETY, MODERATION_APIS, Policy, load_policy
from functions.records import MAX_SLICE_DEPTH

__all__ = ["APP_ROOT", "AppConfig", "StorageConnection", "load_config", "relevant_environment", "route_location"]

APP_ROOT = Path(__file__).resolve().parent.parent
"""Where function_app.py, host.json and policy.yaml live (the deployment package's root)."""

log = logging.getLogger("cvops.functions")

_STORAGE_PREFIX = settings.STORAGE_CONNECTION
# Connection strings the app or its host read; registered for redaction even when the app does not use them itself.
_SECRET_NAMES = (_STORAGE_PREFIX, "AzureWebJobsStorage")


@dataclass(frozen=True)
class StorageConnection:
    """How the app reaches its storage account: a connection string (local, Azurite) or service URIs with an identity.

    This mirrors the Functions host's own rules for ``connection=CVOPS_STORAGE``, so the triggers and the app's own
    writes always use the same account.
    """

    connection_string: str | None = field(default=None, repr=False)
    blob_service_uri: str | None = None
    queue_service_uri: str | None = None
    client_id: str | None = None

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> StorageConnection:
        raw = env.get(_STORAGE_PREFIX, "")
        if raw.strip():
            return cls(connection_string=check_connection_string(_STORAGE_PREFIX, raw))
        blob_uri = (env.get(f"{_STORAGE_PREFIX}__blobServiceUri") or env.get(f"{_STORAGE_PREFIX}__serviceUri") or "")
        if not blob_uri.strip():
            raise ConfigurationError(
                f"app setting {_STORAGE_PREFIX} is not set, nor {_STORAGE_PREFIX}__blobServiceUri",
                setting=_STORAGE_PREFIX,
                hint=f"locally set {_STORAGE_PREFIX} to a connection string (Azurite: UseDevelopmentStorage=true or "
                     f"its explicit string); in Azure set {_STORAGE_PREFIX}__blobServiceUri and "
                     f"{_STORAGE_PREFIX}__queueServiceUri for the managed identity")
        queue_uri = env.get(f"{_STORAGE_PREFIX}__queueServiceUri", "").strip() or None
        client_id = env.get(f"{_STORAGE_PREFIX}__clientId", "").strip() or None
        return cls(blob_service_uri=blob_uri.strip(), queue_service_uri=queue_uri, client_id=client_id)


@dataclass(frozen=True)
class AppConfig:
    """Everything the handler needs to know, validated. Keys are kept out of ``repr`` so they never reach a log."""

    prediction_endpoint: str
    prediction_key: str = field(repr=False)
    project_id: str
    publish_name: str
    model: str
    moderation_endpoint: str
    moderation_key: str = field(repr=False)
    moderation_api: str
    incoming: Location
    accepted: Location
    review: Location
    rejected: Location
    quarantine: Location
    results: Location
    backlog_queue: str
    policy: Policy
    store_predictions: bool
    move_source: bool
    prediction_tps: float
    moderation_tps: float
    storage: StorageConnection
    model_contract: str = ""  # CVOPS_MODEL_CONTRACT: empty means recognised from the files
    slice_depth: int = 1  # CVOPS_SLICE_DEPTH: folders of the blob name in a record's blob.slice

    @property
    def moderation_enabled(self) -> bool:
        return bool(self.moderation_endpoint)

    def destination(self, outcome: str) -> Location:
        """Where copies of an outcome go (:data:`functions.routes.BY_OUTCOME`: accepted -> ``accepted``...)."""
        return getattr(self, routes.BY_OUTCOME[outcome].key)


def relevant_environment(environ: Mapping[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """The settings the configuration depends on, as a hashable snapshot (the cache key of the app context)."""
    env = os.environ if environ is None else environ
    names = [s.name for s in settings.SETTINGS] + list(routes.LEGACY_SETTINGS)
    names += [k for k in env if k == _STORAGE_PREFIX or k.startswith(f"{_STORAGE_PREFIX}__")]
    return tuple(sorted((name, env.get(name, "")) for name in set(names)))


def route_location(route: routes.Route, environ: Mapping[str, str] | None = None) -> Location:
    """A route's location from its setting, honouring the route's deprecated former names (``route.legacy_settings``).

    Why here, once: the app and the review tool must read the same container for the same settings, and a deployment
    configured before a rename (``CVOPS_CLASSIFIED_CONTAINER``) must keep routing where it did. Only a former name set:
    its value is used, with one warning to rename it. Both set to the same location: the new name's, with one warning to
    delete the former. Set to different locations: a ConfigurationError naming both, since either choice could send
    images somewhere the operator did not mean. Container names are not secrets, so the messages carry them.
    """
    env = os.environ if environ is None else environ
    current = Location.parse(settings.read(route.setting, env), route.setting) if env.get(route.setting, "").strip() \
        else None
    former = [(name, Location.parse(env[name], name)) for name in route.legacy_settings if env.get(name, "").strip()]
    for name, location in former:
        if current is not None and location != current:
            raise ConfigurationError(
                f"app settings {route.setting}={str(current)!r} and {name}={str(location)!r} disagree: {name} is the "
                f"former name of {route.setting}, so they set the same container",
                setting=route.setting,
                hint=f"keep {route.setting} set to the container you want and delete {name}")
    if former and current is None and len({location for _, location in former}) > 1:
        values = " and ".join(f"{name}={str(location)!r}" for name, location in former)
        raise ConfigurationError(f"app settings {values} disagree: both are former names of {route.setting}",
                                 setting=route.setting,
                                 hint=f"set {route.setting} to the container you want and delete "
                                      + " and ".join(name for name, _ in former))
    if former:
        name, location = former[0]
        if current is None:
            log.warning("app setting %s is deprecated: rename it to %s (its value, container %r, is used meanwhile)",
                        name, route.setting, str(location))
            return location
        log.warning("app setting %s is deprecated and ignored: %s is set to the same container %r; delete %s",
                    name, route.setting, str(location), name)
    return current if current is not None else Location.parse(settings.read(route.setting, env), route.setting)


def setting_in_effect(route: routes.Route, environ: Mapping[str, str] | None = None) -> str:
    """The app setting that names a route's location now: its own when set, else a former name that is set (the one
    :func:`route_location` used), else its own (the default applies). An error about the location names this one, the
    setting the operator has to fix."""
    env = os.environ if environ is None else environ
    if env.get(route.setting, "").strip():
        return route.setting
    return next((name for name in route.legacy_settings if env.get(name, "").strip()), route.setting)


def _flag(name: str, env: Mapping[str, str]) -> bool:
    value = settings.read(name, env).strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no", ""):
        return False
    raise ConfigurationError(f"app setting {name}={value!r} is not true or false", setting=name,
                             hint=f"set {name} to true or false")


def _slice_depth(env: Mapping[str, str]) -> int:
    value = settings.read("CVOPS_SLICE_DEPTH", env)
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_SLICE_DEPTH):
        raise ConfigurationError(f"app setting CVOPS_SLICE_DEPTH={value!r} is not a number of folders from 1 to "
                                 f"{MAX_SLICE_DEPTH}", setting="CVOPS_SLICE_DEPTH",
                                 hint="set it to how many leading folders of a blob name make its slice, e.g. 1")
    return int(value)


def _rate(name: str, env: Mapping[str, str]) -> float:
    value = settings.read(name, env)
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if not (rate > 0 and math.isfinite(rate)):  # "nan" and "inf" parse as floats
        raise ConfigurationError(f"app setting {name}={value!r} is not a positive number of calls per second",
                                 setting=name, hint=f"set {name} to the pricing tier's limit, e.g. 10")
    return rate


# What each moderation API allows per second when CVOPS_MODERATION_TPS is empty: Computer Vision S1 10 calls per second;
# Content Safety 1,000 requests per 10 s (F0 and S0), paced as 100 per second so no second holds more than a tenth.
DEFAULT_MODERATION_TPS = {COMPUTER_VISION: 10.0, CONTENT_SAFETY: 100.0}


def _moderation_api(env: Mapping[str, str]) -> str:
    value = settings.read("CVOPS_MODERATION_API", env).strip().lower()
    if value not in MODERATION_APIS:
        raise ConfigurationError(f"app setting CVOPS_MODERATION_API={value!r} is not a moderation API",
                                 setting="CVOPS_MODERATION_API",
                                 hint=f"set it to {' or '.join(MODERATION_APIS)}")
    return value


def _project_id(env: Mapping[str, str]) -> str:
    """VISION_PROJECT_ID, which must be a project's id (a UUID), not its name: the service would answer a non-UUID
    with an error that reads as if the publish name were wrong."""
    value = settings.read("VISION_PROJECT_ID", env)
    try:
        uuid.UUID(value)
    except ValueError:
        raise ConfigurationError(
            f"app setting VISION_PROJECT_ID={value!r} is not a project id (a UUID such as "
            "0f8fad5b-d9cb-469f-a165-70867728950e)", setting="VISION_PROJECT_ID",
            hint="set it to the project's id, not its name: `cvops status --project NAME --json` prints it") from None
    return value


def load_config(environ: Mapping[str, str] | None = None, app_root: Path = APP_ROOT) -> AppConfig:
    """Read and check every setting; a ConfigurationError names the first wrong one."""
    env = os.environ if environ is None else environ
    for name in _SECRET_NAMES:  # the host's own storage connection may be printed by an SDK error too
        register_secret(env.get(name))
    locations = {route.key: route_location(route, env) for route in routes.ROUTES}
    incoming = locations[routes.INCOMING.key]
    if incoming.prefix:
        raise ConfigurationError(f"app setting {routes.INCOMING.setting} must be a container name without a prefix",
                                 setting=routes.INCOMING.setting, hint="the blob trigger watches a whole container")
    outputs = {route.key: locations[route.key] for route in routes.OUTPUTS}
    for route in routes.OUTPUTS:
        if outputs[route.key].container == incoming.container:
            raise ConfigurationError(
                f"app setting {route.setting} points into the incoming container {incoming.container!r}: every copy "
                "would trigger the function again", setting=route.setting, hint="use another container for outputs")
    check_disjoint(outputs)
    moderation_endpoint = settings.read("VISION_MODERATION_ENDPOINT", env)
    moderation_api = _moderation_api(env)
    # Bands on the other API's scale would never fire: refused, naming the band, when moderation is on.
    policy = load_policy(settings.read("CVOPS_POLICY", env), app_root,
                         moderation_api=moderation_api if moderation_endpoint else None)
    if moderation_endpoint and not policy.uses_moderation:
        raise ConfigurationError(
            "VISION_MODERATION_ENDPOINT is set but the routing policy has no moderation bands, so every "
            "Computer Vision call would decide nothing", setting="VISION_MODERATION_ENDPOINT",
            hint="add a moderation section to the policy, or clear VISION_MODERATION_ENDPOINT")
    queue = settings.read("CVOPS_BACKLOG_QUEUE", env)
    if not Location.parse(queue, "CVOPS_BACKLOG_QUEUE") or "/" in queue:
        raise ConfigurationError(f"app setting CVOPS_BACKLOG_QUEUE={queue!r} is not a queue name",
                                 setting="CVOPS_BACKLOG_QUEUE", hint="use 3-63 lowercase letters, digits and hyphens")
    # With an exported model nothing calls the Prediction API, so its settings are not needed (nor read).
    model = settings.read("CVOPS_MODEL", env)
    contract = settings.read("CVOPS_MODEL_CONTRACT", env)
    if contract not in ("", *MODEL_CONTRACTS):
        raise ConfigurationError(f"app setting CVOPS_MODEL_CONTRACT={contract!r} is not a model contract",
                                 setting="CVOPS_MODEL_CONTRACT",
                                 hint=f"use {' or '.join(MODEL_CONTRACTS)}, or leave it empty to recognise it from the files")
    return AppConfig(
        prediction_endpoint="" if model else settings.read("VISION_PREDICTION_ENDPOINT", env),
        prediction_key="" if model else settings.read("VISION_PREDICTION_KEY", env),
        project_id="" if model else _project_id(env),
        publish_name="" if model else settings.read("VISION_PUBLISH_NAME", env),
        model=model,
        model_contract=contract,
        moderation_endpoint=moderation_endpoint,
        moderation_key=settings.read("VISION_MODERATION_KEY", env),
        moderation_api=moderation_api,
        backlog_queue=queue,
        policy=policy,
        store_predictions=_flag("CVOPS_STORE_PREDICTIONS", env),
        move_source=_flag("CVOPS_MOVE_SOURCE", env),
        prediction_tps=_rate("CVOPS_PREDICTION_TPS", env),
        moderation_tps=(_rate("CVOPS_MODERATION_TPS", env) if env.get("CVOPS_MODERATION_TPS", "").strip()
                        else DEFAULT_MODERATION_TPS[moderation_api]),
        storage=StorageConnection.from_environ(env),
        slice_depth=_slice_depth(env),
        **locations,
    )
