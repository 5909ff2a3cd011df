"""The Function App's settings: one catalogue, read by the code, set by infra/ and documented in docs/settings.md.

Why one catalogue: a setting the Bicep forgets, or a name the code reads that nobody sets, fails only in Azure and only at
run time. `SETTINGS` is the single list; `tests/test_infra_settings.py` checks the Bicep against it, and
`local.settings.example.json` is generated from it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from cvops.errors import ConfigurationError
from cvops.redaction import check_key, register_secret
from functions import routes


@dataclass(frozen=True)
class Setting:
    """One app setting: its name, whether the app refuses to start without it, its default, and what it is for."""

    name: str
    doc: str
    default: str | None = None
    required: bool = False
    secret: bool = False
    formerly: tuple[str, ...] = ()
    """Deprecated former names, still read so deployments set up before a rename keep working: the rule (one
    warning, or an error naming both when they disagree) is :func:`functions.config.route_location`."""


# The storage connection used by the triggers and outputs. In Azure it is identity-based: `CVOPS_STORAGE__blobServiceUri`,
# `CVOPS_STORAGE__queueServiceUri`, `CVOPS_STORAGE__credential` and `CVOPS_STORAGE__clientId`; locally it is a connection string
# in `CVOPS_STORAGE` itself. The binding decorators take the prefix as `connection=STORAGE_CONNECTION`.
STORAGE_CONNECTION = "CVOPS_STORAGE"

SETTINGS: tuple[Setting, ...] = (
    Setting("VISION_PREDICTION_ENDPOINT", "Custom Vision prediction endpoint, e.g. https://<name>.cognitiveservices.azure.com/"
            " (not needed with CVOPS_MODEL).", required=True),
    Setting("VISION_PREDICTION_KEY", "Prediction key; empty means keyless access through the managed identity.", secret=True),
    Setting("VISION_PROJECT_ID", "Id of the Custom Vision project whose published iteration classifies images.", required=True),
    Setting("VISION_PUBLISH_NAME", "Publish name of the iteration to use (cvops publish --name).", required=True),
    Setting("CVOPS_MODEL", "An exported ONNX model (cvops export, or an Azure ML AutoML export: model.onnx + labels.json) "
            "that classifies in-process instead of the Prediction API: a zip path relative to the app root, or "
            "az://container/blob in the app's storage. Empty: the API."),
    Setting("CVOPS_MODEL_CONTRACT", "CVOPS_MODEL's contract, custom-vision or azureml-automl, when its files cannot say "
            "(both labels.txt and labels.json). Empty: recognised from the files."),
    Setting("VISION_MODERATION_ENDPOINT", "Endpoint of the moderation resource (Computer Vision 3.2 or Content Safety, "
            "as CVOPS_MODERATION_API says); empty: no moderation."),
    Setting("VISION_MODERATION_KEY", "Key of the moderation resource; empty means keyless access (managed identity).",
            secret=True),
    Setting("CVOPS_MODERATION_API", "Which moderation API scores images: computer-vision (Image Analysis 3.2 adult/racy/"
            "gore scores, retired with Image Analysis on 2028-09-25) or content-safety (Azure AI Content Safety "
            "severities, its successor). The policy's moderation bands must be on that API's scale.",
            default="computer-vision"),
    # The containers: names, defaults and docs come from the routes table (functions/routes.py).
    *(Setting(route.setting, route.doc, default=route.default, formerly=route.legacy_settings) for route in routes.ROUTES),
    Setting("CVOPS_BACKLOG_QUEUE", "Storage queue that fans a backlog of existing blobs out to the same handler.",
            default="cvops-backlog"),
    Setting("CVOPS_POLICY", "Routing policy: inline JSON, or a path to a YAML/JSON file relative to the app root.",
            default="policy.yaml"),
    Setting("CVOPS_STORE_PREDICTIONS", "true: classify_image (stored in the project); false: classify_image_with_no_store.",
            default="false"),
    Setting("CVOPS_MOVE_SOURCE", "true: delete the incoming blob after its copy is verified.", default="false"),
    Setting("CVOPS_PREDICTION_TPS", "Client-side pacing of prediction calls per second and instance (S0 allows 10/20).",
            default="10"),
    Setting("CVOPS_SLICE_DEPTH", "Folders of the blob name each result record names as its slice (blob.slice: "
            "'site-3/' at 1, 'site-3/camera-b/' at 2), what monitoring groups images by; 1 to 16.", default="1"),
    Setting("CVOPS_MODERATION_TPS", "Client-side pacing of moderation calls per second and instance; empty: the API's "
            "documented rate (Computer Vision S1: 10; Content Safety: 1,000 per 10 s, paced as 100)."),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def read(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of a catalogued setting, its default when unset, or a ConfigurationError naming it when required.

    A secret setting's value is registered with :mod:`cvops.redaction` and checked (:func:`cvops.redaction.check_key`).
    """
    setting = BY_NAME[name]
    env = os.environ if environ is None else environ
    raw = env.get(name, "")
    value = raw.strip()
    if setting.secret:
        # Registered before anything else can fail, so no message, log line or record can carry it; checked so a
        # key that can never work (a line break from `az ... -o tsv`, a non-ASCII character) is named, not echoed.
        register_secret(raw)
        return check_key(name, raw) if value else ""
    if value:
        return value
    if setting.required:
        raise ConfigurationError(f"app setting {name} is not set: {setting.doc}",
                                 hint=f"set {name} in the Function App's settings (local: local.settings.json)")
    return setting.default or ""


def example_local_settings() -> dict:
    """The content of local.settings.example.json: every catalogued setting, with its default or a placeholder.

    `Values` is what the Functions host (and `cvops function run-local`) puts in the environment. Secrets are left
    empty; the storage connection points at Azurite. A test keeps the committed file equal to this.
    """
    values: dict[str, str] = {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        STORAGE_CONNECTION: "UseDevelopmentStorage=true",
    }
    for setting in SETTINGS:
        placeholder = f"<{setting.name.lower()}>" if setting.required else ""
        values[setting.name] = "" if setting.secret else (setting.default or placeholder)
    docs = {s.name: s.doc + (f" Formerly {' and '.join(s.formerly)}: still read (deprecated), rename it."
                             if s.formerly else "") for s in SETTINGS}
    docs[STORAGE_CONNECTION] = ("Storage for the triggers and outputs: a connection string locally; in Azure use "
                                f"{STORAGE_CONNECTION}__blobServiceUri, {STORAGE_CONNECTION}__queueServiceUri and "
                                f"{STORAGE_CONNECTION}__clientId with the managed identity instead.")
    return {"IsEncrypted": False, "Values": values, "Comments": docs}

