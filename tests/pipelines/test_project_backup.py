"""`cvops project backup`: a project with tagged, multi-tag and untagged images (more than one 256-image page) backed
up from the real local Custom Vision service through the `cvops` command; killed half-way (SIGKILL, a real child
process) and resumed without downloading again what it had; checked against the service at the end."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure.cognitiveservices.vision.customvision.training.models import ImageFileCreateBatch, ImageFileCreateEntry
from backup_helpers import NoAzurite, seed_project
from flow_helpers import settings_env, unique

from cvops import clients
from devkit import scenes
from pipelines import backup as bk
from pipelines import backup_folders as bf
from pipelines.config import Settings
from pipelines.service import Service
from pipelines.sources import parse_manifest

pytestmark = [pytest.mark.emulator]


# pure -----------------------------------------------------------------------------------------------------------------
def test_journal_entries_whose_file_is_missing_or_changed_are_downloaded_again():
    journal = bf.read_journal([
        json.dumps({"id": "a", "path": "images/a.jpg", "sha256": "1" * 64, "size": 10}),
        json.dumps({"id": "b", "path": "images/b.jpg", "sha256": "2" * 64, "size": 20}),
        json.dumps({"id": "c", "path": "images/c.png", "sha256": "3" * 64, "size": 30}),
        '{"id": "d", "path": "images/d.jp',  # torn by a kill mid-write
    ])
    assert set(journal) == {"a", "b", "c"}
    on_disk = {"images/a.jpg": (10, "1" * 64), "images/b.jpg": (20, "f" * 64), "images/c.png": None}
    have = bk.still_good(journal, on_disk)
    assert set(have) == {"a"}
    images = [bk.ServiceImage(i, (), "u") for i in "abcd"]
    assert [im.id for im in bk.to_download(images, have)] == ["b", "c", "d"]


def test_compare_names_each_count_tag_and_file_that_differs():
    rows = [{"path": "images/a.jpg", "sha256": "1" * 64, "size": 1, "tags": ["beach"]},
            {"path": "images/b.jpg", "sha256": "2" * 64, "size": 2, "tags": ["beach", "city"]},
            {"path": "images/c.jpg", "sha256": "3" * 64, "size": 3, "tags": []}]
    files = {"images/a.jpg": (1, "1" * 64), "images/b.jpg": (2, "9" * 64), "images/c.jpg": None}
    problems = bk.compare(rows, service_tagged=3, service_untagged=1, service_tags={"beach": 2, "city": 2, "sea": 0},
                          files=files)
    assert problems == [
        "tagged images: the service has 3, the backup 2",
        "tag 'city': the service has 2 images, the backup 1",
        "images/b.jpg: 2 bytes with SHA-256 999999999999…, the manifest says 2 bytes with 222222222222…",
        "images/c.jpg: the file is missing",
    ]
    assert bk.compare(rows, service_tagged=2, service_untagged=1, service_tags={"beach": 2, "city": 1},
                      files={r["path"]: (r["size"], r["sha256"]) for r in rows}) == []


def test_the_manifest_is_read_by_images_upload_untagged_images_included():
    rows = [bk.manifest_row(bk.ServiceImage("b", ("beach", "city"), "u", 160, 120, "t", {"k": "v"}),
                            bf.Saved("b", "images/b.jpg", "2" * 64, 2)),
            bk.manifest_row(bk.ServiceImage("a", (), "u"), bf.Saved("a", "images/a.png", "1" * 64, 1))]
    entries = parse_manifest(bk.manifest_text(rows), name="manifest.jsonl")
    assert [(e.path, e.tags) for e in entries] == [("images/a.png", ()), ("images/b.jpg", ("beach", "city"))]


def test_an_empty_tags_cell_in_a_csv_manifest_is_still_refused():
    with pytest.raises(Exception, match="the image has no tags"):
        parse_manifest("path,tags\na.jpg,\n", name="m.csv")
    with pytest.raises(Exception, match="the image has no tags"):
        parse_manifest('{"path": "a.jpg", "tags": [""]}\n', name="m.jsonl")


# against the local service ----------------------------------------------------------------------------------------------
def _cvops(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines", *args]


def _files(out: Path) -> dict[str, str]:
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (out / "images").iterdir() if not p.name.startswith(".")}


@pytest.mark.slow
def test_backup_killed_half_way_resumes_without_downloading_again_and_verifies(start_local_cv, tmp_path):
    # 100 ms per call (image downloads included): the kill lands while the backup is downloading.
    service = start_local_cv(latency_ms=100)
    seeded = seed_project(service, unique("backup"), classification_type="Multilabel", per_class=60, per_combo=5,
                          untagged=20)
    assert seeded.tagged > bk.PAGE, "the project must need more than one page"
    env = {**os.environ, **settings_env(service, NoAzurite())}
    out = tmp_path / "backup"
    command = _cvops("project", "backup", "--project", seeded.project_id, "--out", str(out), "--json")

    child = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        if (out / "images").is_dir() and len(list((out / "images").iterdir())) >= 40:
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL, "the backup ended before it could be killed half-way"
    assert not (out / bk.MANIFEST).exists()
    had = bk.still_good(bf.read_journal((out / bf.JOURNAL).read_text().splitlines()),
                        {p: (len((out / p).read_bytes()), h) for p, h in _files(out).items()})

    rerun = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    total = seeded.tagged + seeded.untagged
    assert report["verified"] and report["mismatches"] == []
    assert (report["images"], report["tagged"], report["untagged"]) == (total, seeded.tagged, seeded.untagged)
    assert report["already_there"] == len(had) > 0
    assert report["downloaded"] == total - len(had)
    assert report["pages"] == 3  # 270 tagged: 256 + 14; 20 untagged: 1

    rows = [json.loads(line) for line in (out / bk.MANIFEST).read_text().splitlines()]
    files = _files(out)
    assert sorted(files) == sorted(r["path"] for r in rows), "a file not in the manifest, or one missing"
    assert all(files[r["path"]] == r["sha256"] for r in rows)
    per_tag: dict[str, int] = {}
    for r in rows:
        for t in r["tags"]:
            per_tag[t] = per_tag.get(t, 0) + 1
    assert per_tag == seeded.per_tag
    assert sum(1 for r in rows if len(r["tags"]) > 1) == 30
    # originalImageUri gave the very bytes uploaded, each with its tags.
    assert {r["sha256"]: tuple(r["tags"]) for r in rows} == seeded.sha256
    client = clients.training_client(service.endpoint, service.training_key)
    sample = client.get_images_by_ids(seeded.project_id, [r["id"] for r in rows[:5]])
    for image in sample:
        row = next(r for r in rows if r["id"] == image.id)
        assert (out / row["path"]).read_bytes() == _get(image.original_image_uri)
        assert sorted(t.tag_name for t in image.tags or []) == row["tags"]

    project = json.loads((out / bk.PROJECT_FILE).read_text())
    assert project["classificationType"] == "Multilabel" and project["domain"] == "General (compact)"
    assert sorted(t["name"] for t in project["tags"]) == sorted(seeded.per_tag)

    third = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert json.loads(third.stdout)["downloaded"] == 0, "a complete backup downloaded again"
    assert client.get_image_count(seeded.project_id, tagging_status="All") == total, "the backup changed the project"


def test_a_damaged_file_is_downloaded_again_and_an_image_added_during_the_backup_is_named(local_cv, tmp_path):
    seeded = seed_project(local_cv, unique("backupcheck"), classification_type="Multiclass", per_class=3, untagged=4)
    service = Service(Settings({"VISION_TRAINING_ENDPOINT": local_cv.endpoint,
                                "VISION_TRAINING_KEY": local_cv.training_key}))
    out = tmp_path / "b"
    first = bk.backup(service, seeded.project_id, out)
    assert first.ok and first.downloaded == 16, first.mismatches
    victim = sorted((out / "images").iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:-10])

    client = clients.training_client(local_cv.endpoint, local_cv.training_key)
    added = []

    def download_then_add(svc, project_id, image):
        if not added:  # the project changes while the backup runs
            tag = next(t.id for t in client.get_tags(project_id) if t.name == "city")
            extra = scenes.dataset(["city"], 1, seed=99, size=(160, 120))[0]
            client.create_images_from_files(project_id, ImageFileCreateBatch(
                images=[ImageFileCreateEntry(name="late.jpg", contents=extra.data, tag_ids=[tag])]))
            added.append(1)
        return bk.download_original(svc, project_id, image)

    second = bk.backup(service, seeded.project_id, out, download=download_then_add)
    assert second.downloaded == 1 and second.already_there == 15
    assert not second.ok
    assert second.mismatches == ["tagged images: the service has 13, the backup 12",
                                 "tag 'city': the service has 4 images, the backup 3"]


def _get(url: str) -> bytes:
    import requests

    response = requests.get(url, timeout=10)
    response.raise_for_status()
    return response.content


def test_behind_a_vnet_the_relative_image_uris_are_read_with_get_artifact(start_local_cv, tmp_path):
    service = start_local_cv(extra_args=["--vnet"])
    seeded = seed_project(service, unique("vnet"), classification_type="Multiclass", per_class=2, untagged=4)
    client = clients.training_client(service.endpoint, service.training_key)
    listed = client.get_tagged_images(seeded.project_id, take=1)[0]
    assert listed.original_image_uri == f"images/{listed.id}/original"  # a path, as the spec says for a VNET
    env = settings_env(service, NoAzurite())
    rerun = subprocess.run(_cvops("project", "backup", "--project", seeded.project_id, "--out", str(tmp_path / "b"),
                                  "--json"), env={**os.environ, **env}, cwd=tmp_path, capture_output=True, text=True,
                           timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    rows = [json.loads(line) for line in (tmp_path / "b" / bk.MANIFEST).read_text().splitlines()]
    assert {r["sha256"]: tuple(r["tags"]) for r in rows} == seeded.sha256


def test_an_image_added_while_the_backup_runs_is_exit_1_naming_the_difference(start_local_cv, tmp_path):
    service = start_local_cv(latency_ms=50)
    seeded = seed_project(service, unique("moving"), classification_type="Multiclass", per_class=6)
    env = {**os.environ, **settings_env(service, NoAzurite())}
    out = tmp_path / "b"
    child = subprocess.Popen(_cvops("project", "backup", "--project", seeded.project_id, "--out", str(out),
                                    "--concurrency", "1"), env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    client = clients.training_client(service.endpoint, service.training_key)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not ((out / "images").is_dir() and any((out / "images").iterdir())):
        time.sleep(0.01)
    tag = next(t.id for t in client.get_tags(seeded.project_id) if t.name == "forest")
    extra = scenes.dataset(["forest"], 1, seed=77, size=(160, 120))[0]
    client.create_images_from_files(seeded.project_id, ImageFileCreateBatch(
        images=[ImageFileCreateEntry(name="late.jpg", contents=extra.data, tag_ids=[tag])]))
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 1, stderr
    assert "differs from the service: tagged images: the service has 25, the backup 24; tag 'forest': the service " \
           "has 7 images, the backup 6" in stderr


def test_backup_draws_a_progress_bar_on_a_terminal_and_nothing_with_json(local_cv, tmp_path):
    from test_progress_output import HIDE_CURSOR, cvops

    seeded = seed_project(local_cv, unique("bar"), classification_type="Multiclass", per_class=3, untagged=4)
    env = {k: v for k, v in settings_env(local_cv, NoAzurite()).items() if v}
    shown = cvops(["project", "backup", "--project", seeded.project_id, "--out", "b"], env, tmp_path, terminal=True)
    assert shown.exit_code == 0, shown.stderr_text
    assert HIDE_CURSOR in shown.stderr and f"backing up 16 images of {seeded.name}" in shown.stderr_text
    assert "16/16" in shown.stderr_text and "verified" in shown.stdout
    quiet = cvops(["project", "backup", "--project", seeded.project_id, "--out", "b", "--json"], env, tmp_path,
                  terminal=True)
    assert (quiet.exit_code, quiet.stderr) == (0, b"") and json.loads(quiet.stdout)["already_there"] == 16
