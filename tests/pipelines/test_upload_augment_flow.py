"""`cvops images upload --augment` end to end, against the local Custom Vision service and Azurite: an imbalanced
set in Blob, the originals sent by SAS URL and the rare tags' variants rendered and sent as bytes, each variant
marked in its image metadata, and a rerun that sends nothing twice."""

from __future__ import annotations

from collections import Counter

import pytest
from flow_helpers import World, settings_env, unique, write_spec

from devkit import scenes
from pipelines.batching import AUGMENT_KEY, source_digest, unpack_keys

pytestmark = [pytest.mark.emulator, pytest.mark.azurite]

# Two common tags and two rare ones: 12/12/5/5. The rare ones are under 0.8 x 12, so each gets variants up to 12.
COUNTS = {"beach": 12, "forest": 12, "mountain": 5, "city": 5}
RARE = ("mountain", "city")


@pytest.fixture
def world(local_cv, azurite, blob_service, tmp_path, monkeypatch) -> World:
    monkeypatch.chdir(tmp_path)
    name, training = unique("augment"), unique("training")
    container = blob_service.get_container_client(training)
    container.create_container()
    for tag, n in COUNTS.items():
        for item in scenes.dataset([tag], n, seed=31, size=(96, 72)):
            container.upload_blob(f"scenes/{tag}/{item.name}", item.data)
    spec = write_spec(tmp_path / "project.yaml", name, training={"container": training, "prefix": "scenes/"})
    return World(settings_env(local_cv, azurite), spec, name, training, "", blob_service)


def project_images(training_client, name: str) -> list:
    project = next(p for p in training_client.get_projects() if p.name == name)
    images = []
    while page := training_client.get_images(project.id, tagging_status="All", take=256, skip=len(images)):
        images += page
    return images


def test_upload_with_augment_adds_marked_variants_of_rare_tags_and_a_rerun_sends_none_twice(world, training_client):
    spec = str(world.spec_path)
    result, _ = world.run("project", "apply", spec)
    assert result.exit_code == 0, result.stderr

    result, up = world.run("images", "upload", "--spec", spec, "--augment")
    assert result.exit_code == 0, result.stderr
    originals = sum(COUNTS.values())
    variants = sum(12 - COUNTS[tag] for tag in RARE)
    assert (up["listed"], up["augmented"], up["created"], up["duplicates"], up["failed"]) == (
        originals, variants, originals + variants, 0, 0)
    assert up["mode"] == "urls" and up["image_bytes_sent"] > 0  # originals by URL, variants rendered here

    images = project_images(training_client, world.name)
    per_tag = Counter(tag.tag_name for image in images for tag in image.tags)
    assert per_tag == {tag: 12 for tag in COUNTS}, "every tag brought up to the largest"

    marked = [image for image in images if (image.metadata or {}).get(AUGMENT_KEY)]
    assert len(marked) == variants
    assert {image.tags[0].tag_name for image in marked} == set(RARE)
    # Each variant's metadata names the digest of "<original key>#<variant>", one of the rare tags' originals.
    rare_keys = [f"{tag}/{item.name}" for tag in RARE for item in scenes.dataset([tag], COUNTS[tag], seed=31,
                                                                                   size=(96, 72))]
    for image in marked:
        kind = image.metadata[AUGMENT_KEY]
        expected = {source_digest(f"{key}#{kind}") for key in rare_keys}
        assert unpack_keys(image.metadata) & expected, f"variant {image.id} ({kind}) names none of its originals"
    unmarked = [image for image in images if not (image.metadata or {}).get(AUGMENT_KEY)]
    assert len(unmarked) == originals

    result, again = world.run("images", "upload", "--spec", spec, "--augment")
    assert result.exit_code == 0, result.stderr
    assert (again["augmented"], again["skipped_already_uploaded"], again["created"], again["create_calls"],
            again["image_bytes_sent"]) == (variants, originals + variants, 0, 0, 0)
    assert len(project_images(training_client, world.name)) == originals + variants
