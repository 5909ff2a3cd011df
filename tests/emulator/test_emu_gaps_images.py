"""Operations of the SDK's classification workflow, read against the spec: image queries (tag filters, paging, order,
metadata `$filter`), image metadata updates, deletes, image performances and stored-prediction queries."""

from __future__ import annotations

import pytest
import requests
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    PredictionQueryTag,
    PredictionQueryToken,
)
from cv_samples import png, project_with_images, raw, unique_name, wait_trained

from devkit import scenes


def error_of(call, *args, **kwargs) -> CustomVisionErrorException:
    with pytest.raises(CustomVisionErrorException) as exc:
        call(*args, **kwargs)
    return exc.value


def test_tagged_images_filter_by_any_of_the_tags_and_page_without_gaps_or_repeats(training_client):
    p, tags = project_with_images(training_client, {"beach": 4, "forest": 3, "city": 2}, seed=41)
    some = [tags["beach"].id, tags["city"].id]  # "Dog and/or Cat": images with either tag
    assert training_client.get_tagged_image_count(p.id, tag_ids=some) == 6
    assert training_client.get_image_count(p.id, tag_ids=some) == 6
    newest, oldest = [], []
    for skip in range(0, 6, 4):
        newest += training_client.get_tagged_images(p.id, tag_ids=some, take=4, skip=skip)
        oldest += training_client.get_tagged_images(p.id, tag_ids=some, take=4, skip=skip, order_by="Oldest")
    assert len({i.id for i in newest}) == 6
    assert [i.id for i in newest] == [i.id for i in reversed(oldest)]
    assert all({t.tag_name for t in i.tags} & {"beach", "city"} for i in newest)
    assert training_client.get_tagged_images(p.id, tag_ids=some, skip=6) == []


def test_metadata_filter_selects_images_with_eq_ne_and_or(training_client):
    p = training_client.create_project(unique_name("meta"))
    for n, (camera, site) in enumerate([("a", "north"), ("a", "south"), ("b", "north")]):
        batch = ImageFileCreateBatch(images=[ImageFileCreateEntry(name=f"{n}.png", contents=png(30 + n, 30))],
                                     metadata={"camera": camera, "site": site})
        training_client.create_images_from_files(p.id, batch)
    training_client.create_images_from_data(p.id, png(40, 40))  # no metadata at all

    def sites(expression: str) -> list[tuple[str | None, str | None]]:
        images = training_client.get_images(p.id, filter=expression, order_by="Oldest")
        assert training_client.get_image_count(p.id, filter=expression) == len(images)
        return [((i.metadata or {}).get("camera"), (i.metadata or {}).get("site")) for i in images]

    assert sites("camera eq 'a'") == [("a", "north"), ("a", "south")]
    assert sites("camera eq 'a' and site ne 'north'") == [("a", "south")]
    assert sites("site eq 'south' or camera eq 'b'") == [("a", "south"), ("b", "north")]
    assert sites("camera ne 'a'") == [("b", "north"), (None, None)]  # no key: not equal to anything
    assert sites("metadata=camera eq 'b'") == [("b", "north")]  # the spec's example form

    e = error_of(training_client.get_images, p.id, filter="camera = 'a'")
    assert (e.response.status_code, e.error.code) == (400, "BadRequestInvalid")
    assert "$filter" in e.error.message and "eq" in e.error.message


def test_update_image_metadata_merges_and_reports_each_image(training_client):
    p = training_client.create_project(unique_name("meta"))
    other = training_client.create_project(unique_name("meta"))
    mine = training_client.create_images_from_files(p.id, ImageFileCreateBatch(
        images=[ImageFileCreateEntry(name="a.png", contents=png(31, 31))], metadata={"source": "s1"})).images[0].image
    theirs = training_client.create_images_from_data(other.id, png(32, 32)).images[0].image

    result = training_client.update_image_metadata(p.id, [mine.id, theirs.id], {"checked": "yes"}, raw=True)
    assert result.response.status_code == 207
    assert [(e.image_id, e.status) for e in result.output.images] == [(mine.id, "OK"), (theirs.id, "ErrorImageNotFound")]
    assert training_client.get_images_by_ids(p.id, image_ids=[mine.id])[0].metadata == {"source": "s1", "checked": "yes"}
    assert training_client.get_images_by_ids(other.id, image_ids=[theirs.id])[0].metadata is None

    full = {f"k{i}": "v" for i in range(9)}
    over = training_client.update_image_metadata(p.id, [mine.id], full)  # 2 + 9 keys: above 10 per image
    assert (over.is_batch_successful, over.images[0].status) == (False, "ErrorLimitExceed")


def test_deleting_another_projects_image_id_leaves_that_image_alone(training_client):
    p = training_client.create_project(unique_name("del"))
    other = training_client.create_project(unique_name("del"))
    theirs = training_client.create_images_from_data(other.id, png(33, 33)).images[0].image
    training_client.delete_images(p.id, image_ids=[theirs.id])
    assert training_client.get_image_count(other.id) == 1
    assert requests.get(theirs.original_image_uri, timeout=10).status_code == 200  # its bytes are still served


@pytest.fixture(scope="module")
def trained(training_client):
    """A small trained project of its own: these tests delete images and store predictions."""
    p, tags = project_with_images(training_client, {"beach": 6, "forest": 6}, seed=42)
    iteration = wait_trained(training_client, p.id, training_client.train_project(p.id).id)
    assert iteration.status == "Completed"
    return p, tags, iteration


def test_image_performances_filter_by_tag_page_and_agree_with_their_count(training_client, trained):
    p, tags, it = trained
    beach = [tags["beach"].id]
    assert training_client.get_image_performance_count(p.id, it.id, tag_ids=beach) == 6
    pages = [training_client.get_image_performances(p.id, it.id, tag_ids=beach, take=4, skip=s) for s in (0, 4)]
    assert [len(page) for page in pages] == [4, 2]
    assert all(i.tags[0].tag_name == "beach" and len(i.predictions) == 2 for page in pages for i in page)

    training_client.delete_images(p.id, image_ids=[pages[0][0].id])  # the iteration keeps it (issue 11)
    listed = training_client.get_image_performances(p.id, it.id, tag_ids=beach, take=50)
    assert len(listed) == training_client.get_image_performance_count(p.id, it.id, tag_ids=beach) == 6
    training_client.delete_images(p.id, image_ids=[pages[0][0].id], all_iterations=True)  # now it leaves them all
    listed = training_client.get_image_performances(p.id, it.id, tag_ids=beach, take=50)
    assert len(listed) == training_client.get_image_performance_count(p.id, it.id, tag_ids=beach) == 5


def test_query_predictions_filters_by_tag_probability_and_pages_with_the_continuation(training_client, trained):
    p, tags, it = trained
    stored = [training_client.quick_test_image(p.id, scenes.generate(label, 900 + n), iteration_id=it.id)
              for n, label in enumerate(["beach", "forest"] * 3)]
    beach = {s.id: next(x.probability for x in s.predictions if x.tag_name == "beach") for s in stored}

    likely_beach = PredictionQueryToken(iteration_id=it.id, tags=[
        PredictionQueryTag(id=tags["beach"].id, min_threshold=0.5, max_threshold=1.0)])
    found = training_client.query_predictions(p.id, likely_beach)
    assert {r.id for r in found.results} == {i for i, prob in beach.items() if prob >= 0.5}

    seen, token = [], PredictionQueryToken(iteration_id=it.id, max_count=4, order_by="Oldest")
    while True:
        page = training_client.query_predictions(p.id, token)
        seen += [r.id for r in page.results]
        if not page.token.continuation:
            break
        token = page.token
    assert seen == [s.id for s in stored]

    three = [PredictionQueryTag(id=t.id, min_threshold=0.0, max_threshold=1.0) for t in tags.values()] * 2
    e = error_of(training_client.query_predictions, p.id, PredictionQueryToken(tags=three[:3]))
    assert e.error.code == "BadRequestPredictionTagsExceededCount"


def test_a_malformed_prediction_query_is_refused_naming_the_field(local_cv, trained):
    p, _, _ = trained
    response = raw(local_cv, "POST", f"/projects/{p.id}/predictions/query", json={"startTime": "yesterday"})
    assert response.status_code == 400
    assert response.json()["code"] == "BadRequestPredictionInvalidQueryParameters"
    assert "startTime" in response.json()["message"]
