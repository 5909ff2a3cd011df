"""Validate real HTTP answers against the official OpenAPI (Swagger 2.0) specs kept in tests/contract/specs/.

Swagger 2.0 response schemas are JSON Schema draft 4 plus two things jsonschema does not know, translated here:
`x-nullable: true` (null is allowed) and the absence of `additionalProperties` (the spec lists every property; an extra
or misspelled one, such as `imagecount` for `imageCount`, must fail, so objects with listed properties are closed).
`$ref`s resolve through a `referencing` registry holding the whole spec document.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPECS = Path(__file__).parent / "specs"
SPEC_FILES = {
    ("training", "v3.4-preview"): "customvision-training/v3.4-preview/Training.json",
    ("training", "v3.3"): "customvision-training/v3.3/Training.json",
    ("prediction", "v3.1"): "customvision-prediction/v3.1/Prediction.json",
    ("prediction", "v3.0"): "customvision-prediction/v3.0/Prediction.json",
    # The moderation APIs the local service serves on the same endpoint.
    ("vision", "v3.2"): "computervision/v3.2/ComputerVision.json",
    ("contentsafety", "2024-09-01"): "contentsafety/2024-09-01/contentsafety.json",
}
# Where each spec's paths start on the endpoint: Custom Vision's specs say it in `basePath`; Content Safety's only in
# its `x-ms-parameterized-host` (`{endpoint}/contentsafety`).
BASE_PATHS = {("contentsafety", "2024-09-01"): "/contentsafety"}

FORMATS = FormatChecker(formats=())


@FORMATS.checks("uuid", raises=ValueError)
def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or str(uuid.UUID(value)) == value.lower()


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or datetime.fromisoformat(value.replace("Z", "+00:00")) is not None


def _translate(node: Any) -> Any:
    """Swagger 2.0 schema -> JSON Schema draft 4 (nullable types, closed objects); `description`s dropped."""
    if isinstance(node, list):
        return [_translate(n) for n in node]
    if not isinstance(node, dict):
        return node
    # "description"/"example" annotations go; a *property* named description (a schema, so a dict) stays
    out = {k: _translate(v) for k, v in node.items()
           if not (k in ("description", "example") and not isinstance(v, dict))}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if out.get("x-nullable") is True:
        if "$ref" in out:
            return {"anyOf": [{"$ref": out["$ref"]}, {"type": "null"}]}
        if "type" in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
    return out


@cache
def spec(api: str, version: str) -> dict[str, Any]:
    return json.loads((SPECS / SPEC_FILES[(api, version)]).read_text(encoding="utf-8"))


@cache
def _registry(api: str, version: str) -> tuple[str, Registry]:
    uri = f"urn:customvision:{api}:{version}"
    translated = _translate(copy.deepcopy(spec(api, version)))
    return uri, Registry().with_resource(uri, Resource.from_contents(translated, default_specification=DRAFT4))


def find_operation(api: str, version: str, method: str, path: str) -> tuple[str, str, dict[str, Any]]:
    """(operationId, path template, operation) of the spec operation that a request path + method hits."""
    document = spec(api, version)
    base = BASE_PATHS.get((api, version)) or document["basePath"]
    if not path.startswith(base):
        raise LookupError(f"{path} is not under {base}")
    rest = path[len(base):]
    matches = []
    # `x-ms-paths` holds overloads of a path by query (Computer Vision's "/analyze?overload=stream"): same path.
    for template, operations in [*document["paths"].items(), *document.get("x-ms-paths", {}).items()]:
        template = template.split("?", 1)[0]
        pattern = "^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, rest) and method.lower() in operations:
            matches.append((template.count("{"), template, operations[method.lower()]))
    if not matches:
        raise LookupError(f"no {method} {rest} in {SPEC_FILES[(api, version)]}")
    _, template, operation = min(matches, key=lambda m: m[0])  # a literal segment beats a parameter
    return operation["operationId"], template, operation


def validate_response(api: str, version: str, method: str, path: str, status: int, body: Any) -> str:
    """Raise jsonschema.ValidationError unless `body` is what the spec allows for this call and status."""
    operation_id, template, operation = find_operation(api, version, method, path)
    responses = operation["responses"]
    key = str(status) if str(status) in responses else "default"
    if key == "default" and 200 <= status < 300:
        raise AssertionError(f"{operation_id} answered {status}, which the spec does not list ({list(responses)})")
    schema_node = responses[key].get("schema")
    if schema_node is None:
        assert body in (None, b"", ""), f"{operation_id} {status} should have no body"
        return operation_id
    uri, registry = _registry(api, version)
    pointer = "/".join(["", "paths", template.replace("~", "~0").replace("/", "~1"), method.lower(), "responses", key,
                        "schema"])
    validator = Draft4Validator({"$ref": f"{uri}#{pointer}"}, registry=registry, format_checker=FORMATS)
    validator.validate(body)
    return operation_id


def error_codes(api: str, version: str) -> set[str]:
    return set(spec(api, version)["definitions"]["CustomVisionError"]["properties"]["code"]["enum"])
