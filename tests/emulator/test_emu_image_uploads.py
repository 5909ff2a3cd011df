"""Image uploads and queries: batch statuses (200/207), limits, duplicates, URLs pulled from Azurite, stored URIs."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
import requests
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    ImageTagCreateEntry,
    ImageUrlCreateBatch,
    ImageUrlCreateEntry,
)
from azure.storage.blob import BlobSasPermissions, generate_blob_sas
from cv_samples import png, project_with_images, raw, unique_name

from devkit import scenes


@pytest.fixture
def project(training_client):
    project = training_client.create_project(unique_name("img"))
    tag = training_client.create_tag(project.id, "red")
    return project, tag


def entry(data: bytes, name: str = "x.png", tags=()) -> ImageFileCreateEntry:
    return ImageFileCreateEntry(name=name, contents=data, tag_ids=list(tags))


def test_files_batch_all_ok_answers_200_with_image_details(training_client, project):
    p, tag = project
    result = training_client.create_images_from_files(
        p.id, ImageFileCreateBatch(images=[entry(png(50, 40), "a.png"), entry(png(30, 30, (0, 9, 0)), "b.png")],
                                   tag_ids=[tag.id]))
    assert result.is_batch_successful
    first = result.images[0]
    assert (first.status, first.source_url, first.image.width, first.image.height) == ("OK", '"a.png"', 50, 40)
    assert [t.tag_name for t in first.image.tags] == ["red"]


def test_same_bytes_again_is_ok_duplicate_in_a_207(training_client, project):
    p, _ = project
    data = png(33, 33, (1, 2, 3))
    training_client.create_images_from_files(p.id, ImageFileCreateBatch(images=[entry(data)]))
    raw_response = training_client.create_images_from_files(
        p.id, ImageFileCreateBatch(images=[entry(data), entry(png(34, 34))]), raw=True)
    assert raw_response.response.status_code == 207
    statuses = [i.status for i in raw_response.output.images]
    assert statuses == ["OKDuplicate", "OK"]
    assert not raw_response.output.is_batch_successful
    assert training_client.get_image_count(p.id) == 2


def test_bad_images_get_per_image_error_statuses(training_client, project):
    p, _ = project
    result = training_client.create_images_from_files(p.id, ImageFileCreateBatch(images=[
        entry(scenes.text_file(), "notes.jpg"),
        entry(scenes.oversized_png(), "huge.png"),
        entry(png(), "fine.png"),
    ]))
    assert [i.status for i in result.images] == ["ErrorImageFormat", "ErrorImageSize", "OK"]
    assert result.images[0].image is None


def test_more_than_64_images_is_refused_with_batch_error(training_client, project):
    p, _ = project
    images = [entry(png(20 + i, 20)) for i in range(65)]
    with pytest.raises(CustomVisionErrorException) as exc:
        training_client.create_images_from_files(p.id, ImageFileCreateBatch(images=images))
    assert (exc.value.response.status_code, exc.value.error.code) == (400, "BadRequestImageBatch")
    assert "64" in exc.value.error.message


def test_more_than_20_tags_in_a_batch_is_refused(training_client):
    p = training_client.create_project(unique_name("tags"))
    tags = [training_client.create_tag(p.id, f"t{i}").id for i in range(21)]
    with pytest.raises(CustomVisionErrorException) as exc:
        training_client.create_images_from_files(p.id, ImageFileCreateBatch(images=[entry(png(), tags=tags)]))
    assert exc.value.error.code == "BadRequestExceedTagPerImageLimit"


def test_unknown_tag_is_refused_naming_it(training_client, project):
    p, _ = project
    missing = "11111111-1111-1111-1111-111111111111"
    with pytest.raises(CustomVisionErrorException) as exc:
        training_client.create_images_from_files(p.id, ImageFileCreateBatch(images=[entry(png(), tags=[missing])]))
    assert exc.value.error.code == "BadRequestImageTags" and missing in exc.value.error.message


def test_negative_and_regular_tag_on_one_image_is_refused_per_image(training_client, project):
    p, tag = project
    negative = training_client.create_tag(p.id, "nothing", type="Negative")
    result = training_client.create_images_from_files(
        p.id, ImageFileCreateBatch(images=[entry(png(), tags=[tag.id, negative.id])]))
    assert result.images[0].status == "ErrorNegativeAndRegularTagOnSameImage"


def test_create_images_from_data_with_sdk_multipart(training_client, project):
    p, tag = project
    result = training_client.create_images_from_data(p.id, png(41, 41), tag_ids=[tag.id])
    assert result.is_batch_successful and result.images[0].image.tags[0].tag_id == tag.id


def test_multipart_with_any_field_names_and_several_images(local_cv, project):
    p, _ = project
    files = {"first": ("one.png", png(21, 21), "image/png"), "second": ("two.png", png(22, 22), "image/png")}
    response = raw(local_cv, "POST", f"/projects/{p.id}/images", files=files)
    assert response.status_code == 200, response.text
    assert [i["sourceUrl"] for i in response.json()["images"]] == ['"one.png"', '"two.png"']


def test_octet_stream_body_is_one_image(local_cv, project):
    p, tag = project
    response = raw(local_cv, "POST", f"/projects/{p.id}/images", params={"tagIds": tag.id}, data=png(23, 23),
                   headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    assert response.json()["images"][0]["image"]["tags"][0]["tagName"] == "red"


def test_image_uris_are_served_by_the_service(training_client, project):
    p, _ = project
    data = png(300, 200, (5, 6, 7))
    image = training_client.create_images_from_files(p.id, ImageFileCreateBatch(images=[entry(data)])).images[0].image
    assert requests.get(image.original_image_uri, timeout=10).content == data
    thumb = requests.get(image.thumbnail_uri, timeout=10)
    assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/jpeg"


def test_metadata_is_kept_on_v34(training_client, project):
    p, _ = project
    batch = ImageFileCreateBatch(images=[entry(png(24, 24))], metadata={"source": "camera-7"})
    image = training_client.create_images_from_files(p.id, batch).images[0].image
    assert image.metadata == {"source": "camera-7"}
    assert training_client.get_images_by_ids(p.id, image_ids=[image.id])[0].metadata == {"source": "camera-7"}


def test_images_from_azurite_sas_urls_and_refused_hosts(training_client, blob_service, project):
    p, tag = project
    container = blob_service.get_container_client(unique_name("src"))
    container.create_container()
    container.upload_blob("a.png", png(25, 25))
    sas = generate_blob_sas(blob_service.account_name, container.container_name, "a.png",
                            account_key=blob_service.credential.account_key,
                            permission=BlobSasPermissions(read=True), expiry=datetime.now(UTC) + timedelta(hours=1))
    good = f"{container.url}/a.png?{sas}"
    missing = f"{container.url}/missing.png?{sas}"
    elsewhere = "http://example.invalid/a.png"
    result = training_client.create_images_from_urls(p.id, ImageUrlCreateBatch(
        images=[ImageUrlCreateEntry(url=u) for u in (good, missing, elsewhere)], tag_ids=[tag.id]), raw=True)
    assert result.response.status_code == 207
    assert [i.status for i in result.output.images] == ["OK", "ErrorSource", "ErrorSource"]
    assert result.output.images[0].source_url == good
    assert result.output.images[0].image.width == 25


def test_listing_counting_paging_and_filters(training_client):
    p, tags = project_with_images(training_client, {"beach": 3, "forest": 2})
    training_client.create_images_from_data(p.id, png(26, 26))
    assert training_client.get_tagged_image_count(p.id) == 5
    assert training_client.get_untagged_image_count(p.id) == 1
    assert training_client.get_image_count(p.id, tagging_status="All") == 6
    assert training_client.get_tagged_image_count(p.id, tag_ids=[tags["forest"].id]) == 2
    newest = training_client.get_tagged_images(p.id, take=2)
    oldest = training_client.get_tagged_images(p.id, take=2, order_by="Oldest")
    assert len(newest) == 2 and newest[0].created >= oldest[0].created
    assert len(training_client.get_tagged_images(p.id, take=50, skip=4)) == 1
    assert len(training_client.get_images(p.id, tagging_status="Untagged")) == 1


def test_take_above_256_is_refused(local_cv, project):
    p, _ = project
    response = raw(local_cv, "GET", f"/projects/{p.id}/images/tagged", params={"take": 257})
    assert response.status_code == 400 and response.json()["code"] == "BadRequest"


def test_image_tags_create_duplicate_and_delete(training_client, project):
    p, tag = project
    image = training_client.create_images_from_data(p.id, png(27, 27)).images[0].image
    pair = ImageTagCreateEntry(image_id=image.id, tag_id=tag.id)
    summary = training_client.create_image_tags(p.id, [pair])
    assert len(summary.created) == 1
    assert len(training_client.create_image_tags(p.id, [pair]).duplicated) == 1
    training_client.delete_image_tags(p.id, image_ids=[image.id], tag_ids=[tag.id])
    assert training_client.get_untagged_image_count(p.id) == 1


def test_delete_all_images(training_client, project):
    p, _ = project
    training_client.create_images_from_files(p.id, ImageFileCreateBatch(images=[entry(png(28, 28))]))
    training_client.delete_images(p.id, all_images=True)
    assert training_client.get_image_count(p.id) == 0


def test_files_batch_contents_are_base64_on_the_wire(local_cv, project):
    p, _ = project
    body = {"images": [{"name": "w.png", "contents": base64.b64encode(png(29, 29)).decode()},
                       {"name": "bad", "contents": "***not base64***"}]}
    response = raw(local_cv, "POST", f"/projects/{p.id}/images/files", json=body)
    assert response.status_code == 207
    assert [i["status"] for i in response.json()["images"]] == ["OK", "ErrorImageFormat"]
