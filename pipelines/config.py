"""The CLI's settings: the names Microsoft's quickstarts use, from the environment or a `.env` file, flags overriding.

Why these names: an operator who followed a Custom Vision quickstart already has them set, and CI secrets keep the
same names across tools. Resolution is a pure function of (environment, .env values, flags) so it is tested without
touching the process environment; only :func:`dotenv_file_values` reads a file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cvops.errors import ConfigurationError
from cvops.redaction import check_connection_string, check_key, redact, register_secret

TRAINING_ENDPOINT = "VISION_TRAINING_ENDPOINT"
TRAINING_KEY = "VISION_TRAINING_KEY"
PREDICTION_ENDPOINT = "VISION_PREDICTION_ENDPOINT"
PREDICTION_KEY = "VISION_PREDICTION_KEY"
PREDICTION_RESOURCE_ID = "VISION_PREDICTION_RESOURCE_ID"
STORAGE_CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"
STORAGE_ACCOUNT_URL = "AZURE_STORAGE_ACCOUNT_URL"
TIER = "CVOPS_TIER"
# Moderation for `cvops predict --policy` (the Function App's settings of the same names: functions/settings.py).
MODERATION_ENDPOINT = "VISION_MODERATION_ENDPOINT"
MODERATION_KEY = "VISION_MODERATION_KEY"
MODERATION_API = "CVOPS_MODERATION_API"

# Settings whose values are credentials: registered for redaction as soon as they are read, checked when used,
# never printed (``Settings.redacted``). An account URL is not secret itself, but may carry a SAS query.
KEYS = frozenset({TRAINING_KEY, PREDICTION_KEY, MODERATION_KEY})
SECRETS = KEYS | {STORAGE_CONNECTION_STRING}

NAMES = (TRAINING_ENDPOINT, TRAINING_KEY, PREDICTION_ENDPOINT, PREDICTION_KEY, PREDICTION_RESOURCE_ID,
         STORAGE_CONNECTION_STRING, STORAGE_ACCOUNT_URL, TIER, MODERATION_ENDPOINT, MODERATION_KEY, MODERATION_API)

_WHAT = {
    TRAINING_ENDPOINT: "the Custom Vision training endpoint, e.g. https://<name>.cognitiveservices.azure.com/",
    TRAINING_KEY: "a key of the Custom Vision training resource",
    PREDICTION_ENDPOINT: "the Custom Vision prediction endpoint",
    PREDICTION_KEY: "a key of the Custom Vision prediction resource",
    PREDICTION_RESOURCE_ID: "the ARM id of the prediction resource (/subscriptions/.../accounts/<name>), needed to publish",
}


@dataclass(frozen=True)
class Rates:
    """Calls per second the client allows itself, by the tier's published limits (Microsoft Learn, Custom Vision "Limits and
    quotas")."""

    training: float
    train_project: float
    prediction: float


TIERS: dict[str, Rates] = {
    "S0": Rates(training=10, train_project=10, prediction=10),
    "F0": Rates(training=10, train_project=2, prediction=2),
}


@dataclass(frozen=True)
class Settings:
    values: Mapping[str, str]

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def require(self, name: str) -> str:
        """The value, or a ConfigurationError that names the setting, says what it is, and how to set it."""
        value = self.get(name)
        if not value:
            what = _WHAT.get(name, name)
            raise ConfigurationError(f"{name} is not set ({what})", setting=name,
                                     hint=f"export {name}=..., put it in .env, or pass the matching --option")
        return check_key(name, value) if name in KEYS else value

    @property
    def tier(self) -> str:
        return self.get(TIER) or "S0"

    @property
    def rates(self) -> Rates:
        tier = self.tier.upper()
        if tier not in TIERS:
            raise ConfigurationError(f"{TIER}={self.tier!r} is not a Custom Vision tier", setting=TIER,
                                     hint=f"use one of {', '.join(TIERS)}")
        return TIERS[tier]

    def storage(self) -> dict[str, str]:
        """Keyword arguments for cvops.clients.blob_service_client: a connection string wins over an account URL."""
        if conn := self.get(STORAGE_CONNECTION_STRING):
            return {"connection_string": check_connection_string(STORAGE_CONNECTION_STRING, conn)}
        if url := self.get(STORAGE_ACCOUNT_URL):
            return {"account_url": url}
        raise ConfigurationError(
            f"neither {STORAGE_CONNECTION_STRING} nor {STORAGE_ACCOUNT_URL} is set (needed to read images from Blob)",
            setting=STORAGE_CONNECTION_STRING,
            hint=f"set {STORAGE_ACCOUNT_URL}=https://<account>.blob.core.windows.net to use your Azure identity, "
                 f"or {STORAGE_CONNECTION_STRING}")

    def queue_storage(self) -> dict[str, str]:
        """Keyword arguments for cvops.clients.queue_service_client, from the same storage settings.

        A connection string with an explicit BlobEndpoint must name its QueueEndpoint too (Azurite's blob-only string
        does not, and the SDK would then try a public host); an account URL maps blob.core -> queue.core.
        """
        storage = self.storage()
        if conn := storage.get("connection_string"):
            parts = {k.strip().lower() for k, _, _ in (p.partition("=") for p in conn.split(";")) if k.strip()}
            if "blobendpoint" in parts and "queueendpoint" not in parts:
                raise ConfigurationError(
                    f"{STORAGE_CONNECTION_STRING} names a BlobEndpoint but no QueueEndpoint, so the backlog queue has no "
                    f"address", setting=STORAGE_CONNECTION_STRING,
                    hint="add QueueEndpoint=<queue service URL>; to it (Azurite: http://127.0.0.1:10001/devstoreaccount1)")
            return {"connection_string": conn}
        url = storage["account_url"]
        if ".blob." not in url:
            raise ConfigurationError(
                f"{STORAGE_ACCOUNT_URL}={url} is not a blob.core URL, so the queue service's URL cannot be derived",
                setting=STORAGE_ACCOUNT_URL,
                hint=f"use https://<account>.blob.core.windows.net, or {STORAGE_CONNECTION_STRING} with a QueueEndpoint")
        return {"account_url": url.replace(".blob.", ".queue.", 1)}

    def redacted(self) -> dict[str, str]:
        """For `--json` diagnostics: which settings are set, never their secret values."""
        return {k: ("<set>" if k in SECRETS else redact(v)) for k, v in self.values.items() if v}


def resolve(environ: Mapping[str, str], dotenv: Mapping[str, str | None] | None = None,
            overrides: Mapping[str, str | None] | None = None) -> Settings:
    """Flags over environment over .env (the usual precedence: a .env file never overrides what CI exported).

    Every secret value met in any layer is registered for redaction here, before anything can print it, whether
    or not it wins (a losing .env key is still a key).
    """
    values: dict[str, str] = {}
    for name in NAMES:
        for layer in (overrides or {}, environ, dotenv or {}):
            value = layer.get(name)
            if value is not None and (name in SECRETS or (name == STORAGE_ACCOUNT_URL and "?" in str(value))):
                register_secret(str(value) if name in SECRETS else str(value).split("?", 1)[1])
        for layer in (overrides or {}, environ, dotenv or {}):
            value = layer.get(name)
            if value is not None and str(value).strip():
                values[name] = str(value).strip()
                break
    return Settings(values)


def dotenv_file_values(path: str | Path | None) -> dict[str, str | None]:
    """The values in a .env file (none when it does not exist; an explicitly named missing file is an error)."""
    from dotenv import dotenv_values

    if path is None:
        default = Path(".env")
        return dict(dotenv_values(default)) if default.is_file() else {}
    p = Path(path)
    if not p.is_file():
        raise ConfigurationError(f"env file {p} does not exist", setting="--env-file")
    return dict(dotenv_values(p))


def load(env_file: str | Path | None = None, overrides: Mapping[str, str | None] | None = None) -> Settings:
    return resolve(os.environ, dotenv_file_values(env_file), overrides)
