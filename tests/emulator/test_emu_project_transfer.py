"""ExportProject / ImportProject in the local service, through the official SDK: a project's tags and images moved to a
second local service by the token; a token sent without URL-encoding fails as on Azure; the fault flag loses images
while the import still says Succeeded (what users report)."""

from __future__ import annotations

import time

import requests
from azure.cognitiveservices.vision.customvision.training.models import ImageFileCreateBatch, ImageFileCreateEntry

from cvops import clients
from devkit import scenes


def _finished(client, project):
    """The imported project once its import has ended (ImportProject answers while it is still Importing)."""
    deadline = time.monotonic() + 30
    while project.status == "Importing" and time.monotonic() < deadline:
        time.sleep(0.05)
        project = client.get_project(project.id)
    return project


def _project(service, name: str):
    client = clients.training_client(service.endpoint, service.training_key)
    domain = next(d.id for d in client.get_domains() if d.name == "General (compact)" and d.type == "Classification")
    project = client.create_project(name, domain_id=domain, classification_type="Multilabel")
    tags = {c: client.create_tag(project.id, c).id for c in ("beach", "city")}
    client.create_tag(project.id, "nothing", type="Negative")
    items = scenes.dataset(["beach", "city", ("beach", "city")], 3, seed=11, size=(96, 64))
    entries = [ImageFileCreateEntry(name=i.name, contents=i.data, tag_ids=[tags[t] for t in i.labels]) for i in items]
    entries.append(ImageFileCreateEntry(name="untagged.jpg", contents=scenes.generate(("city",), 99, size=(96, 64))))
    client.create_images_from_files(project.id, ImageFileCreateBatch(images=entries))
    return client, project


def test_a_project_exported_from_one_service_imports_into_another_with_its_tags_and_images(start_local_cv):
    source, target = start_local_cv(), start_local_cv()
    client, project = _project(source, "transfer")
    exported = client.export_project(project.id)
    assert (exported.image_count, exported.tag_count, exported.region_count) == (10, 3, 0)
    assert exported.token.startswith("++++")
    other = clients.training_client(target.endpoint, target.training_key)
    imported = other.import_project(exported.token, name="moved")
    assert imported.name == "moved" and imported.status == "Importing"
    imported = _finished(other, imported)
    assert imported.status == "Succeeded"
    assert imported.settings.classification_type == "Multilabel"
    assert {(t.name, t.type, t.image_count) for t in other.get_tags(imported.id)} == {
        ("beach", "Regular", 6), ("city", "Regular", 6), ("nothing", "Negative", 0)}
    assert other.get_untagged_image_count(imported.id) == 1
    assert other.get_image_count(imported.id, tagging_status="All") == 10


def test_a_token_not_url_encoded_is_refused_as_azure_refuses_it(start_local_cv):
    source = start_local_cv()
    client, project = _project(source, "raw")
    token = client.export_project(project.id).token
    base = f"{source.endpoint}/customvision/v3.3/training/projects/import"
    raw = requests.post(f"{base}?token={token}", headers={"Training-Key": source.training_key}, timeout=10)
    assert raw.status_code == 400 and raw.json()["code"] == "BadRequestInvalidImportToken"
    assert "was not URL-encoded" in raw.json()["message"]
    encoded = requests.post(base, params={"token": token, "name": "ok"}, headers={"Training-Key": source.training_key},
                            timeout=10)
    assert encoded.status_code == 200 and encoded.json()["name"] == "ok"


def test_the_fault_flag_loses_images_while_the_import_says_succeeded(start_local_cv):
    source, target = start_local_cv(), start_local_cv(extra_args=["--import-drop-images", "3"])
    client, project = _project(source, "lossy")
    other = clients.training_client(target.endpoint, target.training_key)
    imported = _finished(other, other.import_project(client.export_project(project.id).token))
    assert imported.status == "Succeeded" and imported.name == "lossy"
    assert other.get_image_count(imported.id, tagging_status="All") == 7


def test_behind_a_vnet_image_uris_are_paths_that_get_artifact_reads(start_local_cv):
    service = start_local_cv(extra_args=["--vnet"])
    client, project = _project(service, "vnet")
    image = client.get_tagged_images(project.id, take=1)[0]
    assert (image.original_image_uri, image.thumbnail_uri) == (f"images/{image.id}/original",
                                                                f"images/{image.id}/thumbnail")
    original = b"".join(client.get_artifact(project.id, image.original_image_uri))
    assert original[:3] == b"\xff\xd8\xff" and len(original) > 1000
    thumbnail = b"".join(client.get_artifact(project.id, image.thumbnail_uri))
    assert thumbnail[:3] == b"\xff\xd8\xff" and thumbnail != original
    missing = requests.get(f"{service.endpoint}/customvision/v3.4-preview/training/projects/{project.id}/artifacts",
                           params={"path": "images/nothing/original"}, headers={"Training-Key": service.training_key},
                           timeout=10)
    assert missing.status_code == 404 and missing.json()["code"] == "NotFound"
