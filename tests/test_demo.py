"""The demo's own logic: its routing policy is the file `cvops policy suggest` writes from the holdout evaluation, the
same command an operator runs (as a child process, like every other stage of the demo)."""

from __future__ import annotations

import json
import os

import numpy as np

from devkit.demo import SCENES_SPEC, Demo, DemoSize, routing_policy
from functions.policy import load_policy
from pipelines.metrics import evaluate_scores

# Six holdout images (score, is the tag) for two of the scenes spec's tags; the spec's target precision is 0.9.
# beach: 0.95 0.90 are beach, 0.80 is not: precision 0.9 is reached with the most found from 0.90 (2 of 2, 2 of 4).
# city: its highest score is not a city: precision 0.9 is never reached; its best (0.5, from 0.5) is used.
BEACH = [(0.95, 1), (0.90, 1), (0.80, 0), (0.70, 1), (0.6123, 1), (0.30, 0)]
CITY = [(0.97, 0), (0.60, 1), (0.55, 0), (0.50, 1), (0.30, 0), (0.10, 0)]


def test_demo_policy_is_what_cvops_policy_suggest_writes_from_the_evaluation(tmp_path, capsys):
    scores = np.array([[b[0], c[0]] for b, c in zip(BEACH, CITY, strict=True)])
    labels = np.array([[b[1], c[1]] for b, c in zip(BEACH, CITY, strict=True)])
    evaluation = {**evaluate_scores(labels, scores, ["beach", "city"], 0.5, False).to_dict(),
                  "project": "scenes", "iteration": "Iteration 3", "holdout_source": "az://holdout/scenes/"}
    (tmp_path / "evaluation.json").write_text(json.dumps(evaluation))
    demo = Demo(root=tmp_path, size=DemoSize(), env={**os.environ, "CVOPS_SPEC": "", "NO_COLOR": "1"})

    policy = routing_policy(demo, SCENES_SPEC, tmp_path / "evaluation.json", tmp_path / "policy.yaml")

    assert policy["tags"]["beach"] == {"threshold": 0.9, "review_band": 0.25}
    assert policy["tags"]["city"] == {"threshold": 0.5, "review_band": 0.25}      # target not met: its best precision
    assert policy["tags"]["forest"] == {"threshold": 0.5, "review_band": 0.25}    # not measured: the spec's default
    assert policy["version"] == "scenes-iteration-3" and policy["no_tag_passes"] == "review"
    loaded = load_policy(str(tmp_path / "policy.yaml"), tmp_path)   # the file the Function App is pointed at
    assert dict(loaded.thresholds) == {tag: rule["threshold"] for tag, rule in policy["tags"].items()}
    shown = capsys.readouterr().out
    assert "$ cvops policy suggest --spec" in shown and "city       threshold 0.5" in shown and "NOT met" in shown
    assert "target precision 0.9 NOT met" in (tmp_path / "policy.yaml").read_text()
