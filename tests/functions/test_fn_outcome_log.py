"""Each routed image leaves one structured outcome line for Application Insights (functions/outcome_log.py): routed
through the registered blob trigger against Azurite and the local service, the line's JSON and its extras carry the
outcome, tags, top score, reason codes, slice, model and duration, match the result record, and never a key, an
endpoint, a SAS or a blob URL."""

from __future__ import annotations

import json
import logging

from fn_helpers import scene

from functions.outcome_log import MARKER, OUTCOME_FIELDS


def _outcome_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "cvops.functions.outcome"]


def _fields(record: logging.LogRecord) -> dict:
    message = record.getMessage()
    assert message.startswith(f"{MARKER} "), message
    return json.loads(message[len(MARKER) + 1:])


def test_a_routed_image_logs_one_outcome_line_matching_its_record_with_no_secret(function_env, local_cv, caplog):
    caplog.set_level(logging.INFO)
    function_env.upload("shop-7/beach.jpg", scene("beach", seed=3))
    function_env.upload("broken.jpg", b"\xff\xd8\xff not a jpeg")
    routed = function_env.deliver("shop-7/beach.jpg")
    broken = function_env.deliver("broken.jpg")

    lines = _outcome_lines(caplog)
    assert len(lines) == 2
    first, second = (_fields(r) for r in lines)
    assert tuple(first) == OUTCOME_FIELDS
    record = routed.record
    assert first["outcome"] == record["outcome"] and first["tags"] == record["tags"]
    assert first["top_score"] == round(max(p["probability"] for p in record["predictions"]), 4)
    assert first["slice"] == "shop-7/" and first["record_key"] == record["key"] and first["duplicate"] is False
    assert first["model"] == f"{function_env.settings['VISION_PUBLISH_NAME']}@{record['model']['iteration_id']}"
    assert 0 < first["duration_ms"] <= routed.total_ms + 1
    assert second["outcome"] == "quarantine" and second["slice"] == "(no prefix)" and second["top_score"] is None
    assert second["reasons"] == [r["code"] for r in broken.record["reasons"]] and second["reasons"]

    # The same fields as flat extras (what OpenTelemetry would forward as customDimensions).
    extras = lines[0].__dict__
    assert extras["cvops_outcome"] == first["outcome"] and extras["cvops_slice"] == "shop-7/"
    assert extras["cvops_tags"] == ";".join(first["tags"]) and extras["cvops_duration_ms"] == first["duration_ms"]

    text = "\n".join(f"{r.getMessage()} {json.dumps({k: str(v) for k, v in r.__dict__.items()})}" for r in lines)
    for secret in (local_cv.prediction_key, local_cv.training_key, local_cv.endpoint, "AccountKey", "sig=",
                   "http://", "https://", function_env.settings["CVOPS_STORAGE"]):
        assert secret not in text, f"an outcome line carries {secret[:12]}..."


def test_a_duplicate_delivery_logs_a_line_marked_duplicate(function_env, caplog):
    caplog.set_level(logging.INFO)
    function_env.upload("city.jpg", scene("city", seed=4))
    function_env.deliver("city.jpg")
    function_env.deliver("city.jpg")
    first, again = (_fields(r) for r in _outcome_lines(caplog))
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert again["record_key"] == first["record_key"] and again["outcome"] == first["outcome"]
