"""Image sources: folder-per-tag (local and Blob) and manifests, each image keyed by its path under the root."""

from __future__ import annotations

import uuid

import pytest
import requests

from cvops.errors import ConfigurationError
from pipelines.sources import ImageSource, parse_manifest
from pipelines.spec import SourceSpec, parse_source


def write_tree(root, files):
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_a_folder_lists_one_tag_per_sub_folder_and_skips_root_and_hidden_files(tmp_path):
    write_tree(tmp_path, {"beach/1.jpg": b"a", "beach/deeper/2.jpg": b"b", "city/3.png": b"c",
                          "README.md": b"x", "city/.DS_Store": b"y", ".git/beach/4.jpg": b"z"})
    images = ImageSource(SourceSpec("folder", path=str(tmp_path))).list()
    assert [(im.key, im.tags) for im in images] == [("beach/1.jpg", ("beach",)), ("beach/deeper/2.jpg", ("beach",)),
                                                    ("city/3.png", ("city",))]


def test_an_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigurationError, match="holds no labelled images"):
        ImageSource(SourceSpec("folder", path=str(tmp_path))).list()
    with pytest.raises(ConfigurationError, match="does not exist"):
        ImageSource(SourceSpec("folder", path=str(tmp_path / "nope"))).list()


def test_csv_and_jsonl_manifests_give_the_same_entries():
    csv_entries = parse_manifest("path,tags\na.jpg,beach;forest\nb.jpg, city | mountain \n", name="m.csv")
    jsonl = '{"path": "a.jpg", "tags": ["beach", "forest"]}\n\n{"path": "b.jpg", "tags": "city;mountain"}\n'
    json_entries = parse_manifest(jsonl, name="m.jsonl")
    assert [(e.path, e.tags) for e in csv_entries] == [(e.path, e.tags) for e in json_entries] == [
        ("a.jpg", ("beach", "forest")), ("b.jpg", ("city", "mountain"))]


@pytest.mark.parametrize("text, name, message", [
    ("file,labels\na.jpg,x\n", "m.csv", "m.csv: the CSV header must name the columns path and tags"),
    ("path,tags\na.jpg,\n", "m.csv", "m.csv line 2: the image has no tags"),
    ("path,tags\na.jpg,x\na.jpg,y\n", "m.csv", "lists 'a.jpg' more than once"),
    ('{"path": "a.jpg", "tags": ["x"]}\n{not json}\n', "m.jsonl", "m.jsonl line 2 is not JSON"),
    ('{"tags": ["x"]}\n', "m.jsonl", "m.jsonl line 1: expected an object"),
    ("path,tags\n", "m.csv", "lists no images"),
])
def test_a_bad_manifest_line_is_named(text, name, message):
    with pytest.raises(ConfigurationError) as err:
        parse_manifest(text, name=name)
    assert message in str(err.value)


def test_local_manifest_paths_are_relative_to_the_manifest(tmp_path):
    write_tree(tmp_path, {"imgs/a.jpg": b"A", "labels.csv": b"path,tags\nimgs/a.jpg,beach;city\n"})
    source = ImageSource(parse_source(str(tmp_path / "labels.csv")))
    [image] = source.list()
    assert (image.key, image.tags, source.read(image)) == ("imgs/a.jpg", ("beach", "city"), b"A")


@pytest.mark.azurite
def test_a_blob_prefix_lists_tags_from_folders_and_gives_urls_anyone_can_get_but_only_for_a_while(blob_service):
    container = f"src-{uuid.uuid4().hex[:8]}"
    client = blob_service.create_container(container)
    for name in ("scenes/beach/1.jpg", "scenes/city/2.jpg", "scenes/loose.jpg", "other/beach/3.jpg"):
        client.upload_blob(name, name.encode())
    source = ImageSource(parse_source(f"az://{container}/scenes"), lambda: blob_service)
    images = source.list()
    assert [(im.key, im.tags, im.location) for im in images] == [
        ("beach/1.jpg", ("beach",), f"az://{container}/scenes/beach/1.jpg"),
        ("city/2.jpg", ("city",), f"az://{container}/scenes/city/2.jpg")]
    url = source.sas_url(images[0], minutes=5)
    assert "sig=" in url and "sp=r" in url
    assert requests.get(url, timeout=10).content == b"scenes/beach/1.jpg"
    assert requests.get(url.split("?")[0], timeout=10).status_code in (401, 403, 404)


@pytest.mark.azurite
def test_a_manifest_in_blob_resolves_entries_beside_it(blob_service):
    container = f"man-{uuid.uuid4().hex[:8]}"
    client = blob_service.create_container(container)
    client.upload_blob("ml/img/a.jpg", b"A")
    client.upload_blob("ml/labels.jsonl", b'{"path": "img/a.jpg", "tags": ["beach", "forest"]}\n')
    source = ImageSource(parse_source(f"az://{container}/ml/labels.jsonl"), lambda: blob_service)
    [image] = source.list()
    assert image.location == f"az://{container}/ml/img/a.jpg"
    assert source.read(image) == b"A"


@pytest.mark.azurite
def test_a_missing_container_is_named(blob_service):
    with pytest.raises(ConfigurationError, match="container 'no-such-container' does not exist"):
        ImageSource(parse_source("az://no-such-container/x"), lambda: blob_service).list()


def test_a_blob_source_without_storage_settings_says_which_to_set():
    with pytest.raises(ConfigurationError, match="AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_URL"):
        ImageSource(parse_source("az://c/p")).list()
