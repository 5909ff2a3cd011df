"""The demo's export stage compares two runs of the Function App over the same images: the Prediction API's and the
exported model's. Its comparison must count agreement only where both runs left exactly one record, and report every
image the exported run did not record exactly once (the demo fails on those)."""

from __future__ import annotations

from devkit.demo_export import compare, container_settings, top_tag


def record(name: str, outcome: str, *scores: tuple[str, float]) -> dict:
    return {"blob": {"name": name}, "outcome": outcome,
            "predictions": [{"tag": tag, "probability": p} for tag, p in scores]}


def test_second_run_writes_to_its_own_containers_never_the_first_runs():
    settings = container_settings()
    assert settings["CVOPS_INCOMING_CONTAINER"] == "incoming-onnx"
    assert settings["CVOPS_RESULTS_CONTAINER"] == "results-onnx"
    assert all(name.endswith("-onnx") for name in settings.values())


def test_agreement_counts_outcomes_and_top_tags_and_names_missing_or_duplicate_records():
    api = {"a.jpg": [record("a.jpg", "accepted", ("beach", 0.9), ("city", 0.1))],
           "b.jpg": [record("b.jpg", "review", ("forest", 0.5), ("beach", 0.4))],
           "bad.jpg": [record("bad.jpg", "quarantine")],
           "c.jpg": [record("c.jpg", "accepted", ("city", 0.8))]}
    exported = {"a.jpg": [record("a.jpg", "accepted", ("city", 0.1), ("beach", 0.91))],
                "b.jpg": [record("b.jpg", "accepted", ("beach", 0.7), ("forest", 0.2))],
                "bad.jpg": [record("bad.jpg", "quarantine")],
                "c.jpg": [record("c.jpg", "accepted", ("city", 0.8))] * 2}

    summary = compare(api, exported, ["a.jpg", "b.jpg", "bad.jpg", "c.jpg", "d.jpg"])

    assert (summary["images"], summary["same_outcome"]) == (3, 2)
    assert (summary["both_tagged"], summary["same_top_tag"]) == (2, 1)     # the quarantined file has no top tag
    assert summary["differences"] == ["b.jpg: review / accepted"]
    assert [p.split(":")[0] for p in summary["problems"]] == ["c.jpg", "d.jpg"]
    assert top_tag(record("x", "quarantine")) is None
