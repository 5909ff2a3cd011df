"""Numbers in a project spec and on the command line: NaN and infinities are refused, naming the field and the file
(JSON Schema's minimum/maximum let NaN through, and click reads "nan" and "inf" as floats)."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner
from flow_helpers import settings_env

from cvops.errors import ConfigurationError
from pipelines import spec
from pipelines.cli import cli

SPEC = """project:
  name: {name}
  classification_type: Multiclass
  domain: General
tags:
  - name: beach
  - name: city
{extra}
"""


@pytest.mark.parametrize("extra, field", [
    ("evaluation:\n  threshold: .nan", "evaluation.threshold"),
    ("evaluation:\n  target_precision: .inf", "evaluation.target_precision"),
    ("gates:\n  min_precision: .NaN", "gates.min_precision"),
    ("training:\n  timeout_seconds: .inf", "training.timeout_seconds"),
    ("evaluation:\n  threshold: -.inf", "evaluation.threshold"),
])
def test_a_non_finite_number_in_a_spec_is_refused_naming_the_field_and_the_file(tmp_path, extra, field):
    path = tmp_path / "project.yaml"
    path.write_text(SPEC.format(name="p", extra=extra), encoding="utf-8")
    with pytest.raises(ConfigurationError) as caught:
        spec.load(path)
    assert field in str(caught.value) and str(path) in str(caught.value) and "finite" in str(caught.value)
    assert caught.value.setting == field


def test_a_tag_threshold_of_nan_is_named_by_its_index():
    data = {"project": {"name": "p", "classification_type": "Multiclass", "domain": "General"},
            "tags": [{"name": "a"}, {"name": "b", "threshold": float("nan")}]}
    with pytest.raises(ConfigurationError, match=r"tags\[1\]\.threshold is nan"):
        spec.parse(data, origin="x.yaml")


def test_project_apply_with_threshold_nan_exits_2_instead_of_applying(local_cv, azurite, tmp_path):
    """The reproduction: `threshold: .nan` was applied with exit 0."""
    path = tmp_path / "project.yaml"
    path.write_text(SPEC.format(name=f"nan-{uuid.uuid4().hex[:8]}", extra="evaluation:\n  threshold: .nan"),
                    encoding="utf-8")
    result = CliRunner().invoke(cli, ["project", "apply", str(path), "--dry-run", "--json"],
                                env=settings_env(local_cv, azurite))
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert "evaluation.threshold" in error and str(path) in error


@pytest.mark.parametrize("args", [
    ["publish", "--min-precision", "nan"],
    ["publish", "--threshold", "NaN"],
    ["evaluate", "--threshold", "nan"],
    ["train", "--timeout", "inf"],
    ["predict", "x.jpg", "--threshold", "nan"],
])
def test_a_nan_or_infinite_command_line_number_is_a_usage_error(args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "is not a finite number" in result.output
