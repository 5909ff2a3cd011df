"""The demo's transition stage (docs/retirement.md): the scenes project backed up, restored as a second project,
trained, both evaluated on the same holdout, and the backup written as Azure ML AutoML's JSON Lines + MLTable.

Why in the demo: Custom Vision's calls fail after 2028-09-25, and what a team owns (labelled images, tags) lives in the
Training API until it is backed up. The stage shows that the backup is complete enough to rebuild the model (the
restored project trains to the same holdout accuracy, printed side by side) and that the same backup feeds the
successor. Same local service, another project name: the commands are what an operator runs against a second resource
(`--training-endpoint` is the only difference), and a second service would only add a start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Cvops = Callable[..., Any]

RESTORED_SUFFIX = "-restored"
"""The restored project's name: the source's name with this suffix."""
DATASTORE = "workspaceblobstore"
"""The Azure ML datastore the JSON Lines point at: the default one every Azure ML workspace has."""


def holdout_accuracy(evaluation: Mapping[str, Any]) -> float | None:
    """The holdout accuracy from `cvops evaluate --json` (None when the evaluation had no holdout)."""
    holdout = evaluation.get("holdout") or {}
    accuracy = holdout.get("accuracy")
    return float(accuracy) if accuracy is not None else None


def run_transition(cvops: Cvops, root: Path, spec: Path, project: str, *, holdout: str | None = None) -> dict[str, Any]:
    """Backup, restore into ``<project>-restored``, train, evaluate both on the same holdout (the spec's, or
    ``holdout``), AutoML export. ``cvops`` runs one `cvops` command as the demo's other stages do
    (``cvops(stage, *args, json_out=...)``). Returns the numbers the demo's summary prints (print_transition)."""
    backup_dir = root / "backup" / project
    automl_dir = root / "automl" / project
    restored = project + RESTORED_SUFFIX
    spec_arg = ("--spec", str(spec))
    holdout_args = ("--holdout", holdout) if holdout else ()
    backup = cvops("project backup", "project", "backup", *spec_arg, "--out", str(backup_dir), json_out=True)
    print(f"  backed up {backup['images']} images, {backup['tags']} tags, {backup['iterations']} iterations: verified")
    restore = cvops("project restore", "project", "restore", "--from", str(backup_dir), *spec_arg, "--name", restored,
                    json_out=True)
    print(f"  restored {restore['manifest_images']} images into {restored}")
    cvops("train (restored)", "train", "--wait", *spec_arg, "--project", restored)
    original = cvops("evaluate (original)", "evaluate", *spec_arg, *holdout_args, json_out=True)
    copy = cvops("evaluate (restored)", "evaluate", *spec_arg, "--project", restored, *holdout_args, json_out=True)
    exported = cvops("dataset export", "dataset", "export", "--format", "automl", "--from", str(backup_dir),
                     "--out", str(automl_dir), "--datastore", DATASTORE, "--validation-fraction", "0.2", json_out=True)
    summary = {
        "project": project,
        "restored": restored,
        "backup": str(backup_dir),
        "images": backup["images"],
        "restored_images": restore["manifest_images"],
        "accuracy": {"original": holdout_accuracy(original), "restored": holdout_accuracy(copy)},
        "holdout_images": (original.get("holdout") or {}).get("n_images"),
        "automl": {"out": str(automl_dir), "task": exported["task"],
                   "written": {k: v["images"] for k, v in exported["written"].items()}},
    }
    return summary


def print_transition(summary: Mapping[str, Any]) -> None:
    """The two holdout accuracies side by side, and where the AutoML export is."""
    acc = summary["accuracy"]

    def shown(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    print(f"\nTransition: {summary['project']} backed up ({summary['images']} images) and restored as "
          f"{summary['restored']} ({summary['restored_images']} images), trained again")
    print(f"  holdout accuracy on the same {summary['holdout_images']} images: original {shown(acc['original'])}, "
          f"restored {shown(acc['restored'])}")
    print(f"  AutoML ({summary['automl']['task']}) JSON Lines + MLTable in {summary['automl']['out']}: "
          + ", ".join(f"{k} {n} images" for k, n in summary["automl"]["written"].items()))
