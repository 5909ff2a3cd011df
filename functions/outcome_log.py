"""One structured log line per routed image, for Application Insights queries and alerts (infra/modules/alerts.bicep).

What Application Insights actually receives from a Python function's ``logging`` call decides the shape:

- By default the Python worker forwards a log record to the Functions host over gRPC as an ``RpcLog`` with only the
  formatted message, the level, the logger name and the invocation id (``Dispatcher.on_logging`` in
  Azure/azure-functions-python-worker, ``azure_functions_worker/dispatcher.py``). ``extra=`` fields are dropped: the
  trace's customDimensions hold only the host's own ``HostInstanceId``, ``InvocationId``, ``LogLevel``, ``ProcessId``
  and ``Category`` (Azure/azure-functions-python-worker#1327 shows exactly that for ``extra={"custom_dimensions": ...}``;
  #788 and #1681 the same for OpenCensus- and OpenTelemetry-style extras).
- With ``PYTHON_ENABLE_OPENTELEMETRY`` (and ``azure-monitor-opentelemetry`` installed) the worker calls
  ``configure_azure_monitor`` itself (same file, ``initialize_azure_monitor``); the distro's logging handler then turns
  each ``extra`` key into an attribute, which Application Insights shows as a customDimension. Attribute values must be
  strings, numbers, booleans or lists of them: a nested ``custom_dimensions`` dict would not survive.

So the fields travel in the **message**, as compact JSON after a fixed marker (``cvops.outcome {...}``), which every
mode delivers and KQL reads with ``parse_json``; and the same flat fields go in ``extra`` under ``cvops_`` names, so a
team that turns OpenTelemetry on also gets them as customDimensions. The alert queries read the message, so they work
in both modes.

What is logged: outcome, tags, top score, reason codes, slice, model, duration, whether the delivery was a duplicate,
and the record key (to find the result record). Never a message text (it may quote a service's answer), a blob URL
(a SAS would ride on it), a key or an endpoint: only values this module picks out of the record, each of a known form.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from cvops import finite_json
from functions.records import source_slice

__all__ = ["MARKER", "OUTCOME_FIELDS", "log_outcome", "outcome_fields"]

log = logging.getLogger("cvops.functions.outcome")

MARKER = "cvops.outcome"
"""The first word of every outcome line: KQL finds them with ``message startswith "cvops.outcome "``."""

OUTCOME_FIELDS = ("outcome", "tags", "top_score", "reasons", "slice", "model", "duration_ms", "duplicate", "record_key")
"""The JSON keys of an outcome line, in order (tests/test_infra_alerts.py checks the alert queries use only these)."""


def _slice(record: Mapping[str, Any]) -> str:
    """The record's ``blob.slice`` (schema 2, ``CVOPS_SLICE_DEPTH``); for an older record, its blob name's first
    folder by the same rule (:func:`functions.records.source_slice`); ``(no prefix)`` at the container's root."""
    blob = record.get("blob") if isinstance(record.get("blob"), Mapping) else {}
    own = blob.get("slice")
    if not isinstance(own, str):
        own = source_slice(blob.get("name") if isinstance(blob.get("name"), str) else "", 1)
    return own or "(no prefix)"  # a name at the container's root, as cvops monitor names its slice


def _top_score(record: Mapping[str, Any]) -> float | None:
    scores = [p.get("probability") for p in record.get("predictions") or () if isinstance(p, Mapping)]
    finite = [float(s) for s in scores if isinstance(s, int | float) and not isinstance(s, bool) and math.isfinite(s)]
    return round(max(finite), 4) if finite else None


def _model(record: Mapping[str, Any]) -> str | None:
    """Which model decided, as a short name: the publish name and iteration id, or the exported model's contract and
    the first 12 hex digits of its SHA-256. Never a path or URL (CVOPS_MODEL may name a blob)."""
    model = record.get("model") if isinstance(record.get("model"), Mapping) else None
    if not model:
        return None
    exported = model.get("exported_model")
    if isinstance(exported, Mapping):
        return f"{exported.get('contract', 'exported')}:{str(exported.get('sha256', ''))[:12]}"
    iteration = model.get("iteration_id")
    return f"{model.get('publish_name')}@{iteration}" if iteration else str(model.get("publish_name"))


def outcome_fields(record: Mapping[str, Any], *, duration_ms: float, duplicate: bool) -> dict[str, Any]:
    """The fields of one outcome line, from the record in force (pure: tests call it without any service)."""
    return {
        "outcome": record.get("outcome"),
        "tags": [t for t in record.get("tags") or () if isinstance(t, str)],
        "top_score": _top_score(record),
        "reasons": [r["code"] for r in record.get("reasons") or () if isinstance(r, Mapping)
                    and isinstance(r.get("code"), str)],
        "slice": _slice(record),
        "model": _model(record),
        "duration_ms": round(duration_ms, 1),
        "duplicate": duplicate,
        "record_key": record.get("key"),
    }


def log_outcome(record: Mapping[str, Any], *, duration_ms: float, duplicate: bool) -> None:
    """Log one outcome line: JSON in the message (what the worker forwards), flat ``cvops_*`` extras (what
    OpenTelemetry forwards; lists joined with ``;`` so each is a plain string)."""
    fields = outcome_fields(record, duration_ms=duration_ms, duplicate=duplicate)
    extra = {f"cvops_{k}": (";".join(v) if isinstance(v, list) else v) for k, v in fields.items() if v is not None}
    log.info("%s %s", MARKER, finite_json.dumps(fields, ensure_ascii=True, separators=(",", ":")), extra=extra)
