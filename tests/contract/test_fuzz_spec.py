"""The local Custom Vision service fuzzed from the official specs (schemathesis): Training v3.3 and v3.4-preview,
Prediction v3.0 and v3.1, each at its own base path, with valid keys and real ids.

Every operation of each spec gets requests generated from its parameters and body schemas, valid and invalid. Path ids
are the ids of a seeded world (a project with tags and images and a trained, published iteration) so requests reach
past the 404s; a path parameter the fuzzer made invalid on purpose is sent as generated. Checks on every answer:

- no 5xx, ever (the service runs with `--no-input-guard`, so an unforeseen error shows as the 500 it would be, not as
  the guard's 400);
- a documented answer conforms to its schema (schemathesis' `response_schema_conformance`, `content_type_conformance`);
- a success status is one the operation lists (the spec's `default` would let any status pass); an error status is
  4xx and its body is `{code, message}` with a code from the version's `CustomVisionError` enum.

The run is reproducible (derandomized, fixed seed). `make test` runs a few examples per operation; `make fuzz` runs
many (`CV_FUZZ_EXAMPLES`, and the coverage phase's boundary values with `CV_FUZZ_COVERAGE=1`) and prints the figures
(operations, requests, statuses). The service is this module's own process: DeleteProject, DeleteIteration,
UnpublishIteration and the like cannot touch another test's state; the world is re-seeded when one of them broke it.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devkit import scenes
from devkit.local_services import LocalCustomVision, start_local_custom_vision
from tests.contract.spec_schemas import SPEC_FILES, SPECS, error_codes

EXAMPLES = int(os.environ.get("CV_FUZZ_EXAMPLES", "4"))
COVERAGE = os.environ.get("CV_FUZZ_COVERAGE", "") == "1"
SEED = int(os.environ.get("CV_FUZZ_SEED", "20261130"))
REPORT = os.environ.get("CV_FUZZ_REPORT")  # a path: the run's figures as JSON
PUBLISH_NAME = "fuzzmodel"
PREDICTION_RESOURCE_ID = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/fuzz/providers/"
                          "Microsoft.CognitiveServices/accounts/fuzz-prediction")
# The write operations that can take the world apart (delete it, unpublish it); after them the world is checked.
BREAKING = {"DeleteProject", "DeleteIteration", "UnpublishIteration", "DeleteTag", "DeleteImages", "UpdateProject",
            "TrainProject", "PublishIteration"}


def fuzz_schema(api: str, version: str) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        "suppress-health-check": ["all"],
        "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none",
                       "with-security-parameters": False, "mode": "all"},
        "phases": {"coverage": {"enabled": COVERAGE}, "stateful": {"enabled": False}},
    })
    return schemathesis.openapi.from_path(SPECS / SPEC_FILES[(api, version)], config=config)


@dataclass
class World:
    """The seeded ids every request's path parameters point at, re-seeded when a fuzzed request broke them."""

    service: LocalCustomVision
    ids: dict[str, str] = field(default_factory=dict)
    seeded: int = 0

    def _t(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.service.endpoint}/customvision/v3.4-preview/training{path}",
                                headers={"Training-Key": self.service.training_key}, timeout=60, **kwargs)

    def _ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._t(method, path, **kwargs)
        assert response.status_code < 300, f"seeding the fuzz world: {method} {path} -> {response.text}"
        return response.json() if response.content else None

    def seed(self) -> None:
        """A project with two tags of five images each, trained and published as PUBLISH_NAME."""
        for project in self._ok("GET", "/projects"):  # whatever the fuzzer left (the S0 limit is 100 projects)
            for iteration in self._ok("GET", f"/projects/{project['id']}/iterations"):
                if iteration["publishName"]:
                    self._t("DELETE", f"/projects/{project['id']}/iterations/{iteration['id']}/publish")
            self._t("DELETE", f"/projects/{project['id']}")
        project = self._ok("POST", "/projects", params={"name": f"fuzz-{uuid.uuid4().hex[:8]}"})
        tags = [self._ok("POST", f"/projects/{project['id']}/tags", params={"name": label})
                for label in ("beach", "forest")]
        images = [{"name": f"{t['name']}{n}.jpg", "tagIds": [t["id"]],
                   "contents": base64.b64encode(scenes.generate(t["name"], n, size=(64, 48))).decode()}
                  for t in tags for n in range(5)]
        created = self._ok("POST", f"/projects/{project['id']}/images/files", json={"images": images})
        iteration = self._ok("POST", f"/projects/{project['id']}/train")
        deadline = time.monotonic() + 60
        while self._ok("GET", f"/projects/{project['id']}/iterations/{iteration['id']}")["status"] == "Training":
            assert time.monotonic() < deadline, "the fuzz world's iteration did not finish training in 60 s"
            time.sleep(0.1)
        self._ok("POST", f"/projects/{project['id']}/iterations/{iteration['id']}/publish",
                 params={"publishName": PUBLISH_NAME, "predictionId": PREDICTION_RESOURCE_ID})
        domain = self._ok("GET", "/domains")[0]["id"]
        self.ids = {"projectId": project["id"], "iterationId": iteration["id"], "tagId": tags[0]["id"],
                    "imageId": created["images"][0]["image"]["id"], "domainId": domain,
                    "publishedName": PUBLISH_NAME}
        self.seeded += 1

    def ensure(self) -> None:
        """Seed again when the project, its published iteration or its tag is gone (a fuzzed delete)."""
        project, iteration = self.ids.get("projectId"), self.ids.get("iterationId")
        if project is not None:
            got = self._t("GET", f"/projects/{project}/iterations/{iteration}")
            tag = self._t("GET", f"/projects/{project}/tags/{self.ids['tagId']}")
            if got.ok and got.json()["publishName"] == PUBLISH_NAME and tag.ok:
                return
        self.seed()


@dataclass
class Figures:
    """What the run sent and what came back, per API version and operation."""

    requests: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    error_codes: Counter = field(default_factory=Counter)

    def record(self, label: str, operation: str, status: int, body: Any) -> None:
        self.requests[f"{label} {operation}"] += 1
        self.statuses[f"{label} {status}"] += 1
        if status >= 400 and isinstance(body, dict) and "code" in body:
            self.error_codes[str(body["code"])] += 1

    def summary(self) -> dict[str, Any]:
        versions = sorted({k.split()[0] for k in self.requests})
        return {
            "examples_per_operation": EXAMPLES, "coverage_phase": COVERAGE, "seed": SEED,
            "requests": sum(self.requests.values()),
            "operations_covered": {v: sum(1 for k in self.requests if k.startswith(v + " ")) for v in versions},
            "requests_per_version": {v: sum(n for k, n in self.requests.items() if k.startswith(v + " "))
                                     for v in versions},
            "statuses": dict(sorted(self.statuses.items())),
            "error_codes": dict(self.error_codes.most_common()),
        }


FIGURES = Figures()


@pytest.fixture(scope="module")
def fuzz_service(tmp_path_factory) -> LocalCustomVision:
    """The module's own service (in memory), answering 500 for any unforeseen error so the fuzzer sees it."""
    service = start_local_custom_vision(log_dir=tmp_path_factory.mktemp("fuzz-cv-log"),
                                        extra_args=["--no-input-guard"])
    try:
        yield service
    finally:
        service.stop()
        summary = FIGURES.summary()
        if REPORT:
            Path(REPORT).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        print("\nfuzz figures:", json.dumps({k: summary[k] for k in
                                             ("requests", "operations_covered", "requests_per_version")}))


@pytest.fixture(scope="module")
def world(fuzz_service: LocalCustomVision) -> World:
    w = World(fuzz_service)
    w.seed()
    return w


def _path_is_negative(case: schemathesis.Case) -> bool:
    meta = case.meta
    info = meta.components.get(ParameterLocation.PATH) if meta is not None else None
    return info is not None and info.mode == GenerationMode.NEGATIVE


def _documented_statuses(case: schemathesis.Case) -> set[int]:
    return {int(code) for code in case.operation.definition.raw.get("responses", {}) if code.isdigit()}


def check_answer(api: str, version: str, case: schemathesis.Case, response: requests.Response) -> Any:
    """Success: a status the operation lists. Error: 4xx with `{code, message}`, the code in the version's enum."""
    status = response.status_code
    body = response.json() if response.content else None
    assert status < 500, f"{case.operation.label} answered {status}: {response.text[:500]}"
    if status < 400:
        assert status in _documented_statuses(case), (
            f"{case.operation.label} answered {status}; the spec lists {sorted(_documented_statuses(case))}")
        return body
    assert isinstance(body, dict) and set(body) == {"code", "message"}, (
        f"{case.operation.label} answered {status} with a body that is not {{code, message}}: {response.text[:300]}")
    assert body["code"] in error_codes(api, version), (
        f"{case.operation.label} answered code {body['code']!r}, not in the {api} {version} CustomVisionError enum")
    assert isinstance(body["message"], str) and body["message"], f"{case.operation.label}: empty error message"
    return body


def run_case(api: str, version: str, case: schemathesis.Case, service: LocalCustomVision, world: World) -> None:
    operation = case.operation.definition.raw.get("operationId", case.operation.label)
    if not _path_is_negative(case):
        for name in list(case.path_parameters or {}):
            if name in world.ids:
                case.path_parameters[name] = world.ids[name]
    key = {"Training-Key": service.training_key} if api == "training" else {"Prediction-Key": service.prediction_key}
    base_url = f"{service.endpoint}/customvision/{version}/{api}"
    response = case.call(base_url=base_url, headers=key, timeout=60)
    try:
        parsed = response.json() if response.content else None
    except ValueError:
        parsed = None
    FIGURES.record(f"{api}/{version}", operation, response.status_code, parsed)
    body = check_answer(api, version, case, response)
    # The Content-Type check applies to successes with a body. Errors are JSON even where the spec's `produces` lists
    # only application/octet-stream (GetArtifact, ExportProject): Azure answers its CustomVisionError as JSON
    # everywhere (emulator/README.md), and check_answer holds them to {code, message}. A 202/204 without a body has
    # no Content-Type (RFC 9110 8.3: it describes content; there is none), though `produces` lists one.
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    if response.status_code < 400 and response.content:
        checks.append(content_type_conformance)
    case.validate_response(response, checks=checks)
    if operation == "CreateProject" and response.status_code == 200:  # keep under the S0 limit of 100 projects
        requests.delete(f"{base_url}/projects/{body['id']}", headers=key, timeout=60)
    if operation in BREAKING and response.status_code < 300:
        world.ensure()


TRAINING_V34 = fuzz_schema("training", "v3.4-preview")
TRAINING_V33 = fuzz_schema("training", "v3.3")
PREDICTION_V31 = fuzz_schema("prediction", "v3.1")
PREDICTION_V30 = fuzz_schema("prediction", "v3.0")


@TRAINING_V34.parametrize()
def test_training_v34_preview_answers_as_its_spec_says(case, fuzz_service, world):
    run_case("training", "v3.4-preview", case, fuzz_service, world)


@TRAINING_V33.parametrize()
def test_training_v33_answers_as_its_spec_says(case, fuzz_service, world):
    run_case("training", "v3.3", case, fuzz_service, world)


@PREDICTION_V31.parametrize()
def test_prediction_v31_answers_as_its_spec_says(case, fuzz_service, world):
    run_case("prediction", "v3.1", case, fuzz_service, world)


@PREDICTION_V30.parametrize()
def test_prediction_v30_answers_as_its_spec_says(case, fuzz_service, world):
    run_case("prediction", "v3.0", case, fuzz_service, world)


# --- the moderation stand-ins on the same endpoint (Computer Vision 3.2 AnalyzeImage, Content Safety) ----------------
# Content Safety: every operation of its spec. image:analyze is emulated; the text and blocklist operations answer the
# gateway's 404 `{"error": {"code": "404", ...}}` (emulator/README.md), which is the spec's ErrorResponse shape too.
# Computer Vision: its AnalyzeImage (the spec's other operations are not emulated and answer the gateway's 404, whose
# code "404" is outside the spec's ComputerVisionErrorCodes enum, so they are left out rather than checked loosely).
CONTENT_SAFETY_CODES = {"InvalidRequestBody", "InvalidResourceName", "ResourceNotFound", "InternalError", "ServerBusy",
                        "TooManyRequests", "MissingApiVersionParameter", "UnsupportedApiVersionValue", "404"}
CONTENT_SAFETY = fuzz_schema("contentsafety", "2024-09-01")
VISION_V32 = fuzz_schema("vision", "v3.2").include(operation_id="AnalyzeImage")


def check_moderation_answer(api: str, case: schemathesis.Case, response: requests.Response) -> None:
    """No 5xx; a success the operation lists; an error 4xx with `{"error": {code, message}}` (Content Safety: a code it
    documents, also in `x-ms-error-code`; Computer Vision: the spec's enums, checked by the schema)."""
    status = response.status_code
    assert status < 500, f"{case.operation.label} answered {status}: {response.text[:500]}"
    body = response.json() if response.content else None
    if status < 400:
        assert status in _documented_statuses(case), f"{case.operation.label} answered {status}"
        return
    assert isinstance(body, dict) and set(body) == {"error"}, f"{case.operation.label}: {response.text[:300]}"
    if api == "contentsafety":
        assert body["error"]["code"] in CONTENT_SAFETY_CODES, body
        if body["error"]["code"] != "404":  # the gateway's 404 is not the service's error: no header
            assert response.headers.get("x-ms-error-code") == [body["error"]["code"]], response.headers


def run_moderation_case(api: str, case: schemathesis.Case, service: LocalCustomVision) -> None:
    base_url = f"{service.endpoint}/contentsafety" if api == "contentsafety" else f"{service.endpoint}/vision/v3.2"
    meta = case.meta
    query = meta.components.get(ParameterLocation.QUERY) if meta is not None else None
    if api == "contentsafety" and not (query is not None and query.mode == GenerationMode.NEGATIVE):
        # A served version, so requests reach the body checks (a fuzzed query keeps what it was generated with).
        case.query = {**(case.query or {}), "api-version": "2024-09-01"}
    response = case.call(base_url=base_url, headers={"Ocp-Apim-Subscription-Key": service.prediction_key}, timeout=60)
    try:
        parsed = response.json() if response.content else None
    except ValueError:
        parsed = None
    operation = case.operation.definition.raw.get("operationId", case.operation.label)
    FIGURES.record(api, operation, response.status_code, (parsed or {}).get("error") if isinstance(parsed, dict)
                   else None)
    check_moderation_answer(api, case, response)
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    if response.status_code < 400 and response.content:
        checks.append(content_type_conformance)
    case.validate_response(response, checks=checks)


@CONTENT_SAFETY.parametrize()
def test_content_safety_answers_as_its_spec_says(case, fuzz_service):
    run_moderation_case("contentsafety", case, fuzz_service)


@VISION_V32.parametrize()
def test_computer_vision_analyze_answers_as_its_spec_says(case, fuzz_service):
    run_moderation_case("vision", case, fuzz_service)
