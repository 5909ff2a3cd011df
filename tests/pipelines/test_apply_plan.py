"""`project apply` planning: create what is missing, change what differs, never duplicate, delete or guess."""

from __future__ import annotations

import pytest

from cvops.errors import ConfigurationError, CvopsError
from pipelines import spec as specs
from pipelines.plan import ProjectState, TagState, find_project, plan

DOMAINS = {"General": "d-general", "General (compact)": "d-compact", "Food": "d-food"}


def make_spec(**project):
    data = {"project": {"name": "scenes", "classification_type": "Multiclass", "domain": "General", **project},
            "tags": [{"name": "beach"}, {"name": "forest", "description": "trees"}]}
    return specs.parse(data)


def state(**kw):
    base = dict(id="p1", name="scenes", description="", domain_id="d-general", classification_type="Multiclass",
                export_platforms=(), image_count=0)
    base.update(kw)
    return ProjectState(**base)


def test_from_nothing_it_creates_the_project_then_each_tag():
    actions = plan(make_spec(), None, [], DOMAINS)
    assert [(a.kind, a.target) for a in actions] == [("create_project", "scenes"), ("create_tag", "beach"),
                                                     ("create_tag", "forest")]


def test_when_everything_matches_nothing_is_planned():
    tags = [TagState("t1", "beach", ""), TagState("t2", "forest", "trees")]
    assert plan(make_spec(), state(), tags, DOMAINS) == []


def test_only_the_differences_are_planned_and_tags_match_ignoring_case():
    tags = [TagState("t1", "Beach", ""), TagState("t2", "forest", "old")]
    actions = plan(make_spec(domain="Food", description="new"), state(), tags, DOMAINS)
    by_kind = {(a.kind, a.target): a for a in actions}
    assert by_kind[("update_project", "scenes")].changes == {"domain": ("General", "Food"), "description": ("", "new")}
    assert by_kind[("update_tag", "beach")].changes == {"name": ("Beach", "beach")}
    assert by_kind[("update_tag", "beach")].ref == "t1"
    assert by_kind[("update_tag", "forest")].changes == {"description": ("old", "trees")}
    assert not any(a.kind == "create_tag" for a in actions)


def test_a_tag_in_the_project_but_not_in_the_spec_is_left_alone_with_a_note():
    tags = [TagState("t1", "beach", ""), TagState("t2", "forest", "trees"), TagState("t3", "city", "", 12)]
    actions = plan(make_spec(), state(), tags, DOMAINS)
    assert [(a.kind, a.target) for a in actions] == [("note", "city")]
    assert "12 images" in actions[0].describe()


def test_changing_the_classification_type_of_a_project_with_images_is_refused_with_the_reason():
    with pytest.raises(CvopsError, match="Multiclass with 40 images; the service cannot change it to Multilabel"):
        plan(make_spec(classification_type="Multilabel"), state(image_count=40), [], DOMAINS)


def test_changing_the_classification_type_of_an_empty_project_is_planned():
    actions = plan(make_spec(classification_type="Multilabel"), state(), [], DOMAINS)
    assert actions[0].changes["classification_type"] == ("Multiclass", "Multilabel")


def test_an_unknown_domain_lists_the_ones_the_service_offers():
    with pytest.raises(ConfigurationError, match="choose one of: Food, General, General \\(compact\\)"):
        plan(make_spec(domain="Retail"), None, [], DOMAINS)


def test_two_projects_with_the_spec_name_is_an_error_not_a_guess():
    with pytest.raises(CvopsError, match="2 projects are named 'scenes'"):
        find_project("scenes", [state(id="a"), state(id="b")])
    assert find_project("other", [state()]) is None
