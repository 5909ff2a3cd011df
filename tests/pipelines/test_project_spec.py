"""The project spec: valid specs parse into plain data; every mistake is named by its field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cvops.errors import ConfigurationError
from pipelines import spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def minimal(**overrides):
    data = {"project": {"name": "p", "classification_type": "Multiclass", "domain": "General"},
            "tags": [{"name": "a"}, {"name": "b", "threshold": 0.7}]}
    data.update(overrides)
    return data


@pytest.mark.parametrize("path", sorted(EXAMPLES.rglob("project.yaml")), ids=lambda p: p.parent.name)
def test_every_example_spec_is_valid(path):
    loaded = spec.load(path)
    assert loaded.tags and loaded.publish_name


def test_defaults_fill_what_a_minimal_spec_leaves_out():
    s = spec.parse(minimal())
    assert (s.training_type, s.budget_hours, s.threshold, s.gates) == ("Regular", 0, 0.5, spec.Gates())
    assert s.tag_threshold("b") == 0.7
    assert s.tag_threshold("a") == 0.5


@pytest.mark.parametrize("change, where", [
    ({"tags": [{"name": "a", "threshold": 1.5}]}, "tags[0].threshold"),
    ({"project": {"name": "p", "classification_type": "Multiclass", "domain": "Faces"}}, "project.domain"),
    ({"project": {"name": "p", "classification_type": "multi", "domain": "General"}}, "project.classification_type"),
    ({"gates": {"min_map": "high"}}, "gates.min_map"),
    ({"publish": {"name": "has space"}}, "publish.name"),
    ({"colour": "blue"}, "(top level)"),
])
def test_a_wrong_field_is_named_in_the_error(change, where):
    with pytest.raises(ConfigurationError) as err:
        spec.parse(minimal(**change), origin="x.yaml")
    assert f"x.yaml: {where}" in str(err.value)


def test_tag_names_that_differ_only_in_case_are_refused():
    with pytest.raises(ConfigurationError, match="declared twice"):
        spec.parse(minimal(tags=[{"name": "Beach"}, {"name": "beach"}]))


def test_a_budget_without_advanced_training_is_refused():
    with pytest.raises(ConfigurationError, match="budget_hours is only used by Advanced"):
        spec.parse(minimal(training={"budget_hours": 2}))


def test_export_platforms_need_a_compact_domain():
    data = minimal()
    data["project"]["export_platforms"] = ["ONNX"]
    with pytest.raises(ConfigurationError, match="needs a compact domain"):
        spec.parse(data)
    data["project"]["domain"] = "General (compact)"
    assert spec.parse(data).export_platforms == ("ONNX",)


def test_relative_local_sources_are_relative_to_the_spec_file(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(minimal(data={"training": {"folder": "imgs"},
                                                                  "holdout": {"manifest": "h.csv"}})))
    s = spec.load(tmp_path / "s.yaml")
    assert s.training_source == spec.SourceSpec("folder", path=str(tmp_path / "imgs"))
    assert s.holdout_source == spec.SourceSpec("manifest", path=str(tmp_path / "h.csv"))


@pytest.mark.parametrize("text, expected", [
    ("az://training/scenes", spec.SourceSpec("blob", container="training", prefix="scenes/")),
    ("az://training", spec.SourceSpec("blob", container="training", prefix="")),
    ("az://training/a/labels.jsonl", spec.SourceSpec("manifest", path="az://training/a/labels.jsonl")),
    ("data/labels.CSV", spec.SourceSpec("manifest", path="data/labels.CSV")),
    ("data/scenes", spec.SourceSpec("folder", path="data/scenes")),
])
def test_command_line_sources_are_recognised_by_their_form(text, expected):
    assert spec.parse_source(text) == expected


def test_a_missing_or_broken_spec_file_is_named(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        spec.load(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("project: [unclosed\n")
    with pytest.raises(ConfigurationError, match=r"bad.yaml is not valid YAML \(line"):
        spec.load(tmp_path / "bad.yaml")
