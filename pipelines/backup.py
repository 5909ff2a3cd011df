"""`cvops project backup`: everything a Custom Vision project holds, in a folder a person and `cvops` can read.

Why: Custom Vision's calls fail after 2028-09-25, and until then the labelled images live only in the Training API.
A backup is the one copy a team owns: each image's original bytes (``originalImageUri``) with its tags, regions and
metadata; every tag; every iteration with its domain, type, status and performance numbers; what is published under
which name. It only reads: nothing in the service is changed or deleted.

Layout of the folder (``FORMAT``)::

    project.json        the project, its domain, tags, iterations (with performance), what is published, counts
    manifest.jsonl      one line per image: path, sha256, size, tags (+ id, width, height, created, metadata, regions);
                        `cvops images upload manifest.jsonl` reads it (an untagged image has "tags": [])
    images/<id>.<ext>   the original bytes, named by the service's image id (the extension from the bytes)
    .cvops-backup/downloaded.jsonl
                        the journal: one line per image once its file is complete (what a rerun trusts)

Paged: the service answers at most 256 images per call (``take``/``skip``), in ``Oldest`` order so that images added
while the backup runs land on later pages instead of shifting the earlier ones. Resumable: each file is written to a
temporary name and renamed once complete, then journalled with its SHA-256; a rerun re-hashes what the journal lists
and downloads only images with no file, a damaged file, or no journal line. Checked: at the end the service's image
and tag counts are read again and compared with the manifest, and every file is hashed against it; any difference is
named (the CLI exits 1).

``--out az://container/prefix`` writes the same layout to Blob Storage (:class:`BlobFolder`): there a blob exists only
once its upload is committed, and each image blob carries its SHA-256 in its metadata, which serves as the journal.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from cvops import limits
from cvops.errors import ConfigurationError, CvopsError
from cvops.redaction import strip_query
from cvops.retry import call
from pipelines.backup_folders import (
    IMAGES,
    BlobFolder,
    LocalFolder,
    Saved,
)
from pipelines.progress import NullReporter, Reporter
from pipelines.service import Service

FORMAT = "cvops-backup/1"
PROJECT_FILE = "project.json"
MANIFEST = "manifest.jsonl"
PAGE = limits.MAX_PAGE_SIZE  # the service's largest `take` (256)
UNTAGGED = "Untagged"
_MAGIC = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF87a", ".gif"), (b"GIF89a", ".gif"),
          (b"BM", ".bmp"))


# plain data ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceImage:
    """One image as the Training API lists it (what the manifest keeps besides the bytes)."""

    id: str
    tags: tuple[str, ...]
    uri: str
    width: int | None = None
    height: int | None = None
    created: str | None = None
    metadata: Mapping[str, str] | None = None
    regions: Sequence[Mapping[str, Any]] | None = None


@dataclass
class BackupReport:
    out: str
    project: str
    images: int = 0
    tagged: int = 0
    untagged: int = 0
    tags: int = 0
    iterations: int = 0
    downloaded: int = 0
    already_there: int = 0
    bytes_downloaded: int = 0
    pages: int = 0  # pages of images listed (at most 256 images each)
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {"out": self.out, "project": self.project, "images": self.images, "tagged": self.tagged,
                "untagged": self.untagged, "tags": self.tags, "iterations": self.iterations,
                "downloaded": self.downloaded, "already_there": self.already_there,
                "bytes_downloaded": self.bytes_downloaded, "pages": self.pages,
                "verified": self.ok, "mismatches": self.mismatches}


# pure planning ------------------------------------------------------------------------------------------------------
def extension_of(data: bytes) -> str:
    """The file extension the bytes' signature says (the service accepts JPEG, PNG, GIF and BMP); ``.bin`` else."""
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    return ".bin"


def image_path(image_id: str, data: bytes) -> str:
    """Where an image's bytes go in the folder: named by its id (stable across runs and unique in the project)."""
    return f"{IMAGES}/{image_id}{extension_of(data)}"


def still_good(journal: Mapping[str, Saved], on_disk: Mapping[str, tuple[int, str] | None]) -> dict[str, Saved]:
    """The journal entries whose file is there with the journalled size and SHA-256 (``on_disk[path]``: the file's
    size and hash, or None when missing). Anything else is downloaded again. Pure."""
    return {i: s for i, s in journal.items() if on_disk.get(s.path) == (s.size, s.sha256)}


def to_download(images: Iterable[ServiceImage], have: Mapping[str, Saved]) -> list[ServiceImage]:
    """The images of a page that have no good file yet. Pure."""
    return [im for im in images if im.id not in have]


def manifest_row(image: ServiceImage, saved: Saved) -> dict[str, Any]:
    """One manifest line: what `images upload` reads (path, tags) first, then what a person or a check needs."""
    return {"path": saved.path, "sha256": saved.sha256, "size": saved.size, "tags": list(image.tags),
            "id": image.id, "width": image.width, "height": image.height, "created": image.created,
            "metadata": dict(image.metadata) if image.metadata else None,
            "regions": [dict(r) for r in image.regions] if image.regions else None}


def manifest_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """The manifest, one JSON object a line, sorted by path (a rerun writes the same bytes). Pure."""
    return "".join(json.dumps(r, sort_keys=False, ensure_ascii=False) + "\n" for r in sorted(rows, key=lambda r: r["path"]))


def tag_counts(rows: Iterable[Mapping[str, Any]]) -> Counter[str]:
    return Counter(t for r in rows for t in r["tags"])


def compare(rows: Sequence[Mapping[str, Any]], *, service_tagged: int, service_untagged: int,
            service_tags: Mapping[str, int], files: Mapping[str, tuple[int, str] | None]) -> list[str]:
    """Every difference between the manifest, the service's counts and the files, each named. Pure.

    ``service_tags``: tag name -> the service's image count; ``files``: path -> (size, sha256) as found, or None.
    """
    out: list[str] = []
    tagged = sum(1 for r in rows if r["tags"])
    untagged = len(rows) - tagged
    if tagged != service_tagged:
        out.append(f"tagged images: the service has {service_tagged}, the backup {tagged}")
    if untagged != service_untagged:
        out.append(f"untagged images: the service has {service_untagged}, the backup {untagged}")
    counts = tag_counts(rows)
    for name in sorted(set(service_tags) | set(counts)):
        if name not in service_tags:
            out.append(f"tag {name!r}: on {counts[name]} backed-up images but not in the service's tags")
        elif counts.get(name, 0) != service_tags[name]:
            out.append(f"tag {name!r}: the service has {service_tags[name]} images, the backup {counts.get(name, 0)}")
    for r in rows:
        found = files.get(r["path"])
        if found is None:
            out.append(f"{r['path']}: the file is missing")
        elif found != (r["size"], r["sha256"]):
            out.append(f"{r['path']}: {found[0]} bytes with SHA-256 {found[1][:12]}…, the manifest says {r['size']} "
                       f"bytes with {r['sha256'][:12]}…")
    return out


# the service --------------------------------------------------------------------------------------------------------
def _image(raw: Any) -> ServiceImage:
    regions = [r.serialize(keep_readonly=True) if hasattr(r, "serialize") else r for r in (raw.regions or [])]
    return ServiceImage(id=raw.id, tags=tuple(sorted(t.tag_name for t in (raw.tags or []))),
                        uri=raw.original_image_uri or "", width=raw.width, height=raw.height,
                        created=raw.created.isoformat() if raw.created else None,
                        metadata=dict(raw.metadata) if raw.metadata else None, regions=regions or None)


def pages(service: Service, project_id: str, tagging: str, *, page: int = PAGE) -> Iterator[list[ServiceImage]]:
    """The project's tagged or untagged images, ``page`` per call, oldest first."""
    skip = 0
    while True:
        if tagging == UNTAGGED:
            raw = service.training_call(f"list untagged images {skip}-{skip + page}", lambda c, s=skip: c.get_untagged_images(
                project_id, order_by="Oldest", take=page, skip=s))
        else:
            raw = service.training_call(f"list tagged images {skip}-{skip + page}", lambda c, s=skip: c.get_tagged_images(
                project_id, order_by="Oldest", take=page, skip=s))
        batch = [_image(r) for r in raw]
        if batch:
            yield batch
        if len(batch) < page:
            return
        skip += page


def download_original(service: Service, project_id: str, image: ServiceImage, *, timeout: float = 60.0) -> bytes:
    """The original bytes: an absolute ``originalImageUri`` is a SAS URL (no key); a relative one (a resource behind
    a VNET, says the spec) is read through GetArtifact."""
    if not image.uri:
        raise CvopsError(f"the service lists image {image.id} with no originalImageUri")
    if not image.uri.lower().startswith(("http://", "https://")):
        return b"".join(service.training_call(f"get artifact of image {image.id}",
                                              lambda c: c.get_artifact(project_id, image.uri)))

    def get() -> bytes:
        response = requests.get(image.uri, timeout=timeout)
        response.raise_for_status()
        return response.content

    return call(get, what=f"download image {image.id} from {strip_query(image.uri)}", policy=service.policy)


def iteration_records(service: Service, project_id: str, domains: Mapping[str, str], *,
                      threshold: float = 0.5) -> list[dict[str, Any]]:
    """Every iteration as the service describes it, with its domain's name and (when Completed) its performance."""
    out = []
    for it in service.iterations(project_id):
        row = it.serialize(keep_readonly=True)
        row["domainName"] = domains.get(it.domain_id)
        if it.status == "Completed":
            perf = service.training_call(f"get performance of {it.name}", lambda c, i=it.id: c.get_iteration_performance(
                project_id, i, threshold=threshold))
            row["performance"] = perf.serialize(keep_readonly=True)
        out.append(row)
    return sorted(out, key=lambda r: r.get("created") or "")


def backup(service: Service, project_ref: str, out: Path | LocalFolder | BlobFolder, *, concurrency: int = 8,
           threshold: float = 0.5, reporter: Reporter | None = None,
           download: Callable[[Service, str, ServiceImage], bytes] = download_original) -> BackupReport:
    """Back up one project into ``out`` (created, or resumed when it holds an earlier run's files)."""
    reporter = reporter or NullReporter()
    folder = LocalFolder(out) if isinstance(out, Path) else out
    project_state = service.project(project_ref)
    project_id = project_state.id
    folder.prepare()
    existing = folder.read_text(PROJECT_FILE)
    if existing is not None:
        earlier = json.loads(existing).get("project", {})
        if earlier.get("id") != project_id:
            raise ConfigurationError(f"{folder} holds a backup of another project ({earlier.get('name')!r}, "
                                     f"{earlier.get('id')})", setting="--out",
                                     hint="give an empty folder, or that project's own backup folder to resume it")
    journal = folder.journal()
    with reporter.task(f"checking {len(journal)} images of an earlier run", total=len(journal) or None) as task:
        on_disk = {}
        for saved in journal.values():
            on_disk[saved.path] = folder.quick_digest(saved.path)
            task.advance()
    have = still_good(journal, on_disk)

    project = service.training_call("get project", lambda c: c.get_project(project_id))
    domains = {d.id: d.name for d in service.training_call("list domains", lambda c: c.get_domains())}
    tags = service.training_call("list tags", lambda c: c.get_tags(project_id))
    tagged_total = int(service.training_call("count tagged images", lambda c: c.get_tagged_image_count(project_id)) or 0)
    untagged_total = int(service.training_call("count untagged images",
                                               lambda c: c.get_untagged_image_count(project_id)) or 0)
    report = BackupReport(str(folder), project.name, tags=len(tags))
    rows: dict[str, dict[str, Any]] = {}

    def fetch(image: ServiceImage) -> tuple[ServiceImage, Saved, int]:
        data = download(service, project_id, image)
        path = image_path(image.id, data)
        folder.write(path, data)
        return image, Saved(image.id, path, hashlib.sha256(data).hexdigest(), len(data)), len(data)

    total = tagged_total + untagged_total
    with reporter.task(f"backing up {total} images of {project.name}", total=total) as task, \
            ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for tagging in ("Tagged", UNTAGGED):
            for page in pages(service, project_id, tagging):
                report.pages += 1
                page = [im for im in page if im.id not in rows]  # an image listed twice (paging moved) counts once
                for image in page:
                    if image.id in have:
                        rows[image.id] = manifest_row(image, have[image.id])
                        report.already_there += 1
                        task.advance()
                # Journal lines are appended by this thread only, as the downloads come back.
                for image, saved, size in pool.map(fetch, to_download(page, have)):
                    folder.record(saved)
                    rows[image.id] = manifest_row(image, saved)
                    report.downloaded += 1
                    report.bytes_downloaded += size
                    task.advance()

    iterations = iteration_records(service, project_id, domains, threshold=threshold)
    report.iterations = len(iterations)
    ordered = sorted(rows.values(), key=lambda r: r["path"])
    report.images = len(ordered)
    report.tagged = sum(1 for r in ordered if r["tags"])
    report.untagged = report.images - report.tagged

    project_doc = {
        "format": FORMAT,
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "project": project.serialize(keep_readonly=True),
        "domain": domains.get(project.settings.domain_id),
        "classificationType": project.settings.classification_type,
        "tags": [t.serialize(keep_readonly=True) for t in sorted(tags, key=lambda t: t.name)],
        "iterations": iterations,
        "published": {it["publishName"]: {"iteration": it["name"], "iterationId": it["id"],
                                          "predictionResourceId": it.get("originalPublishResourceId")}
                      for it in iterations if it.get("publishName")},
        "performanceThreshold": threshold,
        "counts": {"images": report.images, "tagged": report.tagged, "untagged": report.untagged,
                   "tags": dict(sorted(tag_counts(ordered).items()))},
    }
    folder.write(MANIFEST, manifest_text(ordered).encode("utf-8"))
    folder.write(PROJECT_FILE, (json.dumps(project_doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))

    with reporter.task(f"verifying {len(ordered)} files", total=len(ordered)) as task:
        files = {}
        for r in ordered:
            files[r["path"]] = folder.digest(r["path"])
            task.advance()
    final_tags = service.training_call("list tags", lambda c: c.get_tags(project_id))
    report.mismatches = compare(
        ordered,
        service_tagged=int(service.training_call("count tagged images", lambda c: c.get_tagged_image_count(project_id)) or 0),
        service_untagged=int(service.training_call("count untagged images",
                                                   lambda c: c.get_untagged_image_count(project_id)) or 0),
        service_tags={t.name: t.image_count or 0 for t in final_tags}, files=files)
    return report


def _folder(folder: Path | LocalFolder | BlobFolder) -> LocalFolder | BlobFolder:
    return LocalFolder(folder) if isinstance(folder, Path) else folder


def read_backup_project(folder: Path | LocalFolder | BlobFolder) -> dict[str, Any]:
    """project.json of a backup, or a ConfigurationError saying what is wrong."""
    folder = _folder(folder)
    text = folder.read_text(PROJECT_FILE)
    if text is None:
        raise ConfigurationError(f"{folder} is not a cvops backup: it has no {PROJECT_FILE}",
                                 hint="give the folder (or az://container/prefix) `cvops project backup --out` wrote")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigurationError(f"{folder}/{PROJECT_FILE} is not valid JSON: {e}") from None
    found = data.get("format") if isinstance(data, dict) else None
    if found != FORMAT:
        raise ConfigurationError(f"{folder}/{PROJECT_FILE} is not a {FORMAT} backup (its format: {found!r})")
    return data


def read_manifest_rows(folder: Path | LocalFolder | BlobFolder) -> list[dict[str, Any]]:
    folder = _folder(folder)
    text = folder.read_text(MANIFEST)
    if text is None:
        raise ConfigurationError(f"{folder} has no {MANIFEST}: the backup did not finish",
                                 hint="run `cvops project backup` again with the same --out; it resumes")
    rows = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.strip():
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as e:
                raise ConfigurationError(f"{folder}/{MANIFEST} line {number} is not JSON: {e.msg}") from None
            rows.append(row)
    return rows


def verify_folder(folder: Path | LocalFolder | BlobFolder) -> tuple[list[dict[str, Any]], list[str]]:
    """The manifest's rows and every file that is missing or differs from it (before a restore or an export uploads
    or writes anything). A local file is hashed; a blob is checked by its size and the SHA-256 its upload recorded
    in its metadata (so a restore from Blob moves no image byte through this machine)."""
    folder = _folder(folder)
    rows = read_manifest_rows(folder)
    folder.journal()  # Blob: one listing gives every image's size and recorded SHA-256
    problems = []
    for r in rows:
        found = folder.quick_digest(r["path"])
        if found is None:
            problems.append(f"{r['path']}: the file is missing")
        elif found != (r.get("size"), r.get("sha256")):
            problems.append(f"{r['path']}: its SHA-256 or size differs from the manifest")
    return rows, problems
