"""Issue 11's reproduced divergences from the spec, each against the real local service: malformed input answers 400
with the spec's enum code (never a 5xx, which the SDK's retry policy would repeat), DeleteImages keeps trained
iterations' images unless `allIterations`, and answers 202 with either flag, errors outside the enum are gone (an
unknown route, an old API version), a wrong key answers as Azure's gateway does, and export is advertised only where
ExportIteration produces it (issue 10: compact classification domains, platform ONNX)."""

from __future__ import annotations

import pytest
import requests
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import CustomVisionErrorException
from cv_samples import project_with_images, raw, unique_name, wait_trained
from msrest.authentication import ApiKeyCredentials

from emulator.server import serve
from tests.contract.spec_schemas import error_codes

GATEWAY_401 = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
               "for an active subscription and use a correct regional API endpoint for your resource.")


def assert_error(response: requests.Response, status: int, code: str) -> dict:
    """The answer is `status` with a flat `{code, message}` body whose code is `code` (and in the spec's enum)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message"} and body["code"] == code, body
    assert code in error_codes("training", "v3.4-preview") and body["message"]
    return body


@pytest.fixture(scope="module")
def trained(training_client: CustomVisionTrainingClient):
    """A project of 6 + 6 tagged images with a completed iteration (its own: DeleteImages changes it)."""
    project, tags = project_with_images(training_client, {"beach": 6, "forest": 6}, seed=11)
    iteration = wait_trained(training_client, project.id, training_client.train_project(project.id).id)
    assert iteration.status == "Completed", iteration.as_dict()
    return project, tags, iteration


# 1. malformed input: 400 with the code of the field at fault --------------------------------------------------------
@pytest.mark.parametrize("contents", [[1], 5], ids=["list", "number"])
def test_files_batch_with_contents_not_a_string_is_400_naming_the_entry(local_cv, published, contents):
    response = raw(local_cv, "POST", f"/projects/{published.project.id}/images/files",
                   json={"images": [{"name": "a", "contents": contents}]})
    body = assert_error(response, 400, "BadRequestImageBatch")
    assert "images[0].contents must be a string" in body["message"]


def test_update_iteration_with_a_number_as_name_is_400_iteration_name(local_cv, published):
    response = raw(local_cv, "PATCH", f"/projects/{published.project.id}/iterations/{published.iteration.id}",
                   json={"name": 5})
    assert "name must be a string" in assert_error(response, 400, "BadRequestIterationName")["message"]


def test_update_tag_with_a_number_as_name_is_400_tag_name(local_cv, published):
    tag = published.tags["beach"]
    response = raw(local_cv, "PATCH", f"/projects/{published.project.id}/tags/{tag.id}", json={"name": 5})
    assert "name must be a string" in assert_error(response, 400, "BadRequestTagName")["message"]


@pytest.mark.parametrize("body", ["null", "[]", "[{}]"])
def test_query_predictions_with_a_body_that_is_not_an_object_is_400(local_cv, published, body):
    response = raw(local_cv, "POST", f"/projects/{published.project.id}/predictions/query", data=body,
                   headers={"Content-Type": "application/json"})
    assert_error(response, 400, "BadRequestPredictionInvalidQueryParameters")


@pytest.mark.parametrize("field, value", [("application", {}), ("session", 5), ("maxCount", "10"),
                                          ("startTime", "0001-01-01T00:00:00+01:00"), ("tags", [{"id": "x"}])])
def test_query_predictions_token_fields_of_the_wrong_type_are_400(local_cv, published, field, value):
    """Found by the fuzzer: `application: {}` was accepted and echoed in the answer's token, against its schema."""
    response = raw(local_cv, "POST", f"/projects/{published.project.id}/predictions/query", json={field: value})
    assert field in assert_error(response, 400, "BadRequestPredictionInvalidQueryParameters")["message"]


def test_query_predictions_answer_token_holds_only_the_specs_fields(local_cv, published):
    response = raw(local_cv, "POST", f"/projects/{published.project.id}/predictions/query",
                   json={"maxCount": 1, "application": None, "extra": 1, "session": "s", "endTime": "",
                         "iterationId": "", "orderBy": "", "tags": [{"id": published.tags["beach"].id,
                                                                     "maxThreshold": None, "x": 1}]})
    assert response.status_code == 200, response.text
    assert response.json()["token"] == {
        "maxCount": 1, "session": "s", "continuation": "", "endTime": None, "iterationId": None, "orderBy": "Newest",
        "tags": [{"id": published.tags["beach"].id, "minThreshold": 0.0, "maxThreshold": 1.0}]}


def test_query_predictions_answer_token_writes_an_early_year_as_a_date_time(local_cv, published):
    """Found by the deep fuzz run: year 276 was answered as "276-11-28T...", which is no date-time."""
    response = raw(local_cv, "POST", f"/projects/{published.project.id}/predictions/query",
                   json={"endTime": "0276-11-28T18:17:08Z"})
    assert response.json()["token"]["endTime"] == "0276-11-28T18:17:08.000Z"


def test_metadata_filter_nested_5000_deep_is_400_saying_the_limit(local_cv, published):
    deep = "(" * 5000 + "k eq 'v'" + ")" * 5000
    for path in ("/images", "/images/count"):
        response = raw(local_cv, "GET", f"/projects/{published.project.id}{path}", params={"$filter": deep})
        body = assert_error(response, 400, "BadRequestInvalid")
        assert "at most 32 levels" in body["message"] and len(body["message"]) < 1000


def test_metadata_filter_with_thousands_of_conditions_is_400_not_a_sqlite_failure(local_cv, published):
    wide = " or ".join(f"k{n} eq 'v'" for n in range(3000))
    response = raw(local_cv, "GET", f"/projects/{published.project.id}/images/count", params={"$filter": wide})
    assert "at most 100 are allowed" in assert_error(response, 400, "BadRequestInvalid")["message"]


def test_paging_numbers_beyond_int32_are_400_not_an_overflow(local_cv, published):
    response = raw(local_cv, "GET", f"/projects/{published.project.id}/images", params={"skip": str(10**30)})
    assert "32-bit integer" in assert_error(response, 400, "BadRequest")["message"]


def test_update_image_metadata_with_a_null_body_is_400(local_cv, published):
    image_id = raw(local_cv, "GET", f"/projects/{published.project.id}/images", params={"take": 1}).json()[0]["id"]
    response = raw(local_cv, "POST", f"/projects/{published.project.id}/images/metadata",
                   params={"imageIds": image_id}, data="null", headers={"Content-Type": "application/json"})
    assert_error(response, 400, "BadRequestImageMetadataKey")


def test_update_project_with_settings_of_the_wrong_types_is_400(local_cv, published):
    path = f"/projects/{published.project.id}"
    assert_error(raw(local_cv, "PATCH", path, json={"settings": []}), 400, "BadRequestInvalid")
    assert_error(raw(local_cv, "PATCH", path, json={"settings": {"domainId": 5}}), 400,
                 "BadRequestProjectUnknownDomain")
    assert_error(raw(local_cv, "PATCH", path, json={"settings": {"targetExportPlatforms": 5}}), 400,
                 "BadRequestProjectUnsupportedExportPlatform")


# 2. and 3. DeleteImages: trained iterations keep their images unless allIterations; either flag answers 202 --------
def test_delete_images_without_all_iterations_keeps_them_in_the_trained_iteration(local_cv, training_client, trained):
    project, tags, iteration = trained
    assert training_client.get_image_performance_count(project.id, iteration.id) == 12
    victim = training_client.get_tagged_images(project.id, tag_ids=[tags["beach"].id], take=1)[0]

    response = raw(local_cv, "DELETE", f"/projects/{project.id}/images", params={"imageIds": victim.id})
    assert response.status_code == 204
    assert training_client.get_image_count(project.id) == 11  # gone from the workspace
    assert training_client.get_image_performance_count(project.id, iteration.id) == 12  # kept by the iteration
    kept = [p for p in training_client.get_image_performances(project.id, iteration.id, take=50) if p.id == victim.id]
    assert len(kept) == 1 and requests.get(kept[0].image_uri, timeout=10).status_code == 200

    response = raw(local_cv, "DELETE", f"/projects/{project.id}/images",
                   params={"imageIds": victim.id, "allIterations": "true"})
    assert response.status_code == 202 and response.content == b""
    assert training_client.get_image_performance_count(project.id, iteration.id) == 11


def test_delete_images_with_all_images_or_all_iterations_answers_202(local_cv, training_client):
    project, _ = project_with_images(training_client, {"city": 2}, seed=5)
    one = training_client.get_images(project.id, take=1)[0]
    response = raw(local_cv, "DELETE", f"/projects/{project.id}/images",
                   params={"imageIds": one.id, "allIterations": "true"})
    assert response.status_code == 202
    response = raw(local_cv, "DELETE", f"/projects/{project.id}/images", params={"allImages": "true"})
    assert response.status_code == 202
    assert training_client.get_image_count(project.id) == 0
    training_client.delete_images(project.id, all_images=True, all_iterations=True)  # the SDK accepts the 202


def test_deleting_the_last_iteration_that_had_a_deleted_image_forgets_it(local_cv, training_client):
    project, _ = project_with_images(training_client, {"beach": 5, "forest": 5}, seed=21)
    iteration = wait_trained(training_client, project.id, training_client.train_project(project.id).id)
    victim = training_client.get_images(project.id, take=1)[0]
    training_client.delete_images(project.id, image_ids=[victim.id])
    assert requests.get(victim.original_image_uri, timeout=10).status_code == 200  # the iteration still has it
    training_client.delete_iteration(project.id, iteration.id)
    assert requests.get(victim.original_image_uri, timeout=10).status_code == 404


# 4. and 6. errors inside the enum; a wrong key as Azure's gateway answers it -----------------------------------------
def test_unknown_route_is_404_with_an_enum_code(local_cv):
    response = requests.get(f"{local_cv.endpoint}/no/such/thing", headers={"Training-Key": local_cv.training_key},
                            timeout=10)
    assert_error(response, 404, "NotFound")


@pytest.mark.parametrize("path", ["/customvision/v2.2/training/projects", "/customvision/v2.0/prediction/x/image"])
def test_old_api_version_404_says_which_versions_are_served(local_cv, path):
    response = requests.get(local_cv.endpoint + path, headers={"Training-Key": local_cv.training_key}, timeout=10)
    message = assert_error(response, 404, "NotFound")["message"]
    assert "v2." in message and "v3.3 and v3.4-preview" in message and "v3.0 and v3.1" in message


def test_wrong_key_answers_what_azures_gateway_answers(local_cv):
    response = raw(local_cv, "GET", "/projects", key="wrong")
    assert response.status_code == 401 and response.reason == "Access Denied"
    assert response.json() == {"error": {"code": "401", "message": GATEWAY_401}}
    client = CustomVisionTrainingClient(local_cv.endpoint, ApiKeyCredentials(in_headers={"Training-key": "wrong"}))
    with pytest.raises(CustomVisionErrorException) as exc:
        client.get_projects()
    # What users of the real service see (Azure/azure-sdk-for-python#2800): the status, no code.
    assert exc.value.response.status_code == 401 and exc.value.error.code is None
    assert "Access Denied" in str(exc.value)


# 5. export is advertised only where ExportIteration produces it ------------------------------------------------------
def test_only_compact_classification_domains_advertise_export_and_only_to_onnx(local_cv, training_client, published):
    for d in training_client.get_domains():
        produced = d.type == "Classification" and "(compact)" in d.name
        assert (d.exportable, d.exportable_platforms) == ((True, ["ONNX"]) if produced else (False, [])), d.name
    for version in ("v3.3", "v3.4-preview"):
        for d in raw(local_cv, "GET", "/domains", version=version).json():
            assert d["exportable"] is (d["type"] == "Classification" and "(compact)" in d["name"])
            assert d.get("exportablePlatforms", []) in ([], ["ONNX"])
    # The published project is on General, which exports nowhere: not advertised, refused, and no export listed.
    iteration = training_client.get_iteration(published.project.id, published.iteration.id)
    assert iteration.exportable is False and iteration.exportable_to == []
    with pytest.raises(CustomVisionErrorException) as exc:
        training_client.export_iteration(published.project.id, published.iteration.id, "ONNX")
    assert exc.value.error.code == "BadRequestExportValidationFailed" and "compact" in exc.value.error.message
    assert training_client.get_exports(published.project.id, published.iteration.id) == []


def test_a_compact_project_may_still_name_target_export_platforms(training_client):
    compact = "0732100f-1a38-4e49-a514-c9b44c697ab5"
    project = training_client.create_project(unique_name("compact"), domain_id=compact,
                                             target_export_platforms=["ONNX"])
    assert project.settings.target_export_platforms == ["ONNX"]


# the last line: an unexpected error provoked by a request is a 400 with an enum code, never a 5xx ------------------
def test_an_unforeseen_parsing_error_is_400_with_an_enum_code_and_500_with_the_guard_off(monkeypatch):
    def broken(req, args):
        raise TypeError("a cause nobody has found yet")

    for guard, status, code in ((True, 400, "BadRequestInvalid"), (False, 500, "ErrorUnknown")):
        service = serve(guard_malformed_input=guard)
        try:
            monkeypatch.setattr(service.app.responses, "GetProjects", broken)
            response = requests.get(f"{service.url}/customvision/v3.4-preview/training/projects",
                                    headers={"Training-Key": service.training_key}, timeout=10)
            assert_error(response, status, code)
        finally:
            service.stop()
