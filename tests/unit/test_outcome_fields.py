"""The outcome line's fields are picked from the record one by one (functions/outcome_log.py): a record full of URLs,
SAS tokens and service messages gives a line with none of them; the model is a short name; the slice follows the
record's own field when there is one."""

from __future__ import annotations

from functions.outcome_log import OUTCOME_FIELDS, outcome_fields

SAS = "sv=2026-10-06&sig=c2VjcmV0"


def _record(**changes):
    record = {
        "key": "k" * 64, "outcome": "quarantine", "tags": [],
        "blob": {"name": "cam-3/2026/x.jpg", "uri": f"https://acct.blob.core.windows.net/incoming/x.jpg?{SAS}"},
        "reasons": [{"code": "refused_by_prediction", "message": f"BadRequest: https://cv.example/?{SAS}"}],
        "predictions": None, "errors": [f"see https://cv.example/?{SAS}"],
        "model": {"exported_model": {"sha256": "ab12" * 16, "labels": ["a"], "contract": "azureml-automl"}},
    }
    record.update(changes)
    return record


def test_no_url_message_or_sas_from_the_record_reaches_the_fields():
    fields = outcome_fields(_record(), duration_ms=12.345, duplicate=False)
    assert tuple(fields) == OUTCOME_FIELDS
    text = repr(fields)
    assert "sig=" not in text and "https://" not in text and "BadRequest" not in text
    assert fields["reasons"] == ["refused_by_prediction"] and fields["top_score"] is None
    assert fields["duration_ms"] == 12.3 and fields["slice"] == "cam-3/"


def test_the_model_is_named_by_publish_name_and_iteration_or_by_contract_and_hash():
    exported = outcome_fields(_record(), duration_ms=1, duplicate=False)["model"]
    assert exported == "azureml-automl:" + ("ab12" * 3)
    service = _record(model={"project_id": "p", "publish_name": "scenes", "iteration_id": "it-1", "stored": False})
    assert outcome_fields(service, duration_ms=1, duplicate=False)["model"] == "scenes@it-1"
    assert outcome_fields(_record(model=None), duration_ms=1, duplicate=False)["model"] is None


def test_the_top_score_ignores_non_finite_and_non_numeric_probabilities():
    predictions = [{"tag": "a", "probability": 0.61234}, {"tag": "b", "probability": "0.9"},
                   {"tag": "c", "probability": float("nan")}, {"tag": "d", "probability": True}]
    fields = outcome_fields(_record(outcome="review", predictions=predictions), duration_ms=1, duplicate=True)
    assert fields["top_score"] == 0.6123 and fields["duplicate"] is True


def test_a_records_own_slice_wins_and_a_root_name_has_no_prefix():
    deeper = _record(blob={"name": "cam-3/2026/x.jpg", "slice": "cam-3/2026/"})  # CVOPS_SLICE_DEPTH=2
    assert outcome_fields(deeper, duration_ms=1, duplicate=False)["slice"] == "cam-3/2026/"
    assert outcome_fields(_record(), duration_ms=1, duplicate=False)["slice"] == "cam-3/"  # a version 1 record
    root = _record(blob={"name": "x.jpg"})
    assert outcome_fields(root, duration_ms=1, duplicate=False)["slice"] == "(no prefix)"
