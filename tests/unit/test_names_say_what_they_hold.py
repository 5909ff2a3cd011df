"""The names issue 12 replaced stay gone: a newcomer should not meet two things called the same, or a one-letter method.

Read with ast over the project's own packages, so a name coming back in any module (or a module coming back under its
old name) fails here with the file and line to look at.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cvops", "functions", "pipelines", "emulator", "devkit", "bench")


def _definitions() -> list[tuple[str, int, str, str]]:
    """(file, line, kind, name) of every function, method and class defined in the project's packages."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    kind = "class" if isinstance(node, ast.ClassDef) else "def"
                    found.append((str(path.relative_to(ROOT)), node.lineno, kind, node.name))
    return found


def test_no_function_is_named_evaluate_t_or_p() -> None:
    # evaluate was three things (one image's verdict, an iteration's numbers, scores against labels); t and p were
    # Service's training and prediction calls.
    clashes = [d for d in _definitions() if d[2] == "def" and d[3] in {"evaluate", "t", "p"}]
    assert clashes == []


def test_classify_and_outcome_each_name_one_thing() -> None:
    # vision.classify calls the Prediction API; a failure's kind is failures.failure_kind. policy.Outcome is a route;
    # what one invocation did to a blob is handler.RoutedBlob.
    defs = _definitions()
    client_side = ("cvops/", "functions/", "pipelines/")  # the local service's own classify is the stand-in's
    assert [d[0] for d in defs if d[3] == "classify" and d[0].startswith(client_side)] == ["functions/vision.py"]
    assert [d[0] for d in defs if d[3] == "Outcome"] == []  # policy.Outcome is a type alias, not a def or class


def test_the_local_services_learning_modules_are_named_for_what_they_hold() -> None:
    assert not [name for name in ("learner.py", "learning.py", "training.py") if (ROOT / "emulator" / name).exists()]
    for name in ("classifier.py", "learning_interface.py", "training_worker.py"):
        assert (ROOT / "emulator" / name).is_file(), name


def test_retry_is_split_into_pacing_failures_and_the_loop() -> None:
    defs = {(d[0], d[3]) for d in _definitions()}
    assert ("cvops/pacing.py", "Pacer") in defs
    assert {("cvops/failures.py", "failure_kind"), ("cvops/failures.py", "retry_after_seconds")} <= defs
    assert {("cvops/retry.py", "RetryPolicy"), ("cvops/retry.py", "call")} <= defs
    retry = (ROOT / "cvops" / "retry.py").read_text(encoding="utf-8")
    # one redaction in the project: cvops.redaction (failures.py quotes service messages through it)
    assert "_SECRET_QUERY" not in retry and "def _redact" not in retry
    assert "from cvops.redaction import redact" in (ROOT / "cvops" / "failures.py").read_text(encoding="utf-8")
