"""Projects, domains and tags through the official training SDK, against the running local service."""

from __future__ import annotations

import pytest
from azure.cognitiveservices.vision.customvision.training.models import CustomVisionErrorException
from cv_samples import project_with_images, unique_name

GENERAL = "ee85a74c-405e-4adc-bb47-ffa8ca0c9f31"
GENERAL_COMPACT = "0732100f-1a38-4e49-a514-c9b44c697ab5"
OD_GENERAL = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"


def error_of(call, *args, **kwargs) -> CustomVisionErrorException:
    with pytest.raises(CustomVisionErrorException) as exc:
        call(*args, **kwargs)
    return exc.value


def test_domains_have_the_real_ids_and_advertise_only_the_export_the_service_produces(training_client):
    domains = {(d.name, d.type): d for d in training_client.get_domains()}
    assert domains[("General [A2]", "Classification")].id == "2e37d7fb-3a54-486a-b4d6-cfc369af0018"
    compact = domains[("General (compact)", "Classification")]
    assert compact.id == GENERAL_COMPACT and compact.exportable and compact.exportable_platforms == ["ONNX"]
    assert not domains[("General", "Classification")].exportable
    assert training_client.get_domain(GENERAL).name == "General"


def test_unknown_domain_is_not_found(training_client):
    e = error_of(training_client.get_domain, "00000000-0000-0000-0000-000000000001")
    assert (e.response.status_code, e.error.code) == (404, "NotFoundDomain")


def test_create_project_defaults_to_general_multiclass_and_lists_it(training_client):
    project = training_client.create_project(unique_name("p"), description="d")
    assert project.settings.domain_id == GENERAL
    assert project.settings.classification_type == "Multiclass"
    assert project.id in {p.id for p in training_client.get_projects()}
    assert training_client.get_project(project.id).description == "d"


def test_create_project_refuses_unknown_domain_and_export_from_non_compact(training_client):
    e = error_of(training_client.create_project, unique_name("p"), domain_id="00000000-0000-0000-0000-000000000001")
    assert e.error.code == "BadRequestProjectUnknownDomain"
    e = error_of(training_client.create_project, unique_name("p"), domain_id=GENERAL,
                 target_export_platforms=["ONNX"])
    assert e.error.code == "BadRequestProjectUnsupportedExportPlatform"
    ok = training_client.create_project(unique_name("p"), domain_id=GENERAL_COMPACT, target_export_platforms=["ONNX"])
    assert ok.settings.target_export_platforms == ["ONNX"]


def test_update_project_changes_name_and_type_while_untagged(training_client):
    project = training_client.create_project(unique_name("p"))
    project.name = unique_name("renamed")
    project.settings.classification_type = "Multilabel"
    updated = training_client.update_project(project.id, project)
    assert (updated.name, updated.settings.classification_type) == (project.name, "Multilabel")


def test_update_project_refuses_classification_change_once_images_are_tagged(training_client):
    project, _ = project_with_images(training_client, {"beach": 1})
    project.settings.classification_type = "Multilabel"
    e = error_of(training_client.update_project, project.id, project)
    assert e.error.code == "BadRequestProjectUnsupportedDomainTypeChange"
    assert "tagged images" in e.error.message


def test_update_project_refuses_switch_to_object_detection(training_client):
    project = training_client.create_project(unique_name("p"))
    project.settings.domain_id = OD_GENERAL
    assert error_of(training_client.update_project, project.id, project).error.code == \
        "BadRequestProjectUnsupportedDomainTypeChange"


def test_delete_project_then_it_is_not_found(training_client):
    project = training_client.create_project(unique_name("p"))
    training_client.delete_project(project.id)
    e = error_of(training_client.get_project, project.id)
    assert (e.response.status_code, e.error.code) == (404, "NotFoundProject")


def test_duplicate_tag_name_is_refused_case_insensitively(training_client):
    project = training_client.create_project(unique_name("p"))
    training_client.create_tag(project.id, "Beach")
    e = error_of(training_client.create_tag, project.id, "beach")
    assert (e.response.status_code, e.error.code) == (400, "BadRequestTagNameNotUnique")


def test_only_one_negative_tag_per_project(training_client):
    project = training_client.create_project(unique_name("p"))
    assert training_client.create_tag(project.id, "none", type="Negative").type == "Negative"
    assert error_of(training_client.create_tag, project.id, "other", type="Negative").error.code == \
        "BadRequestMultipleNegativeTag"


def test_tag_image_count_follows_uploads_and_deletes(training_client):
    project, tags = project_with_images(training_client, {"beach": 3, "forest": 2})
    counts = {t.name: t.image_count for t in training_client.get_tags(project.id)}
    assert counts == {"beach": 3, "forest": 2}
    image = training_client.get_tagged_images(project.id, tag_ids=[tags["beach"].id], take=1)[0]
    training_client.delete_images(project.id, image_ids=[image.id])
    assert training_client.get_tag(project.id, tags["beach"].id).image_count == 2


def test_update_and_delete_tag(training_client):
    project, tags = project_with_images(training_client, {"beach": 1, "forest": 1})
    tag = tags["beach"]
    tag.name = "sea shore"
    assert training_client.update_tag(project.id, tag.id, tag).name == "sea shore"
    training_client.delete_tag(project.id, tags["forest"].id)
    assert [t.name for t in training_client.get_tags(project.id)] == ["sea shore"]
    assert training_client.get_untagged_image_count(project.id) == 1
