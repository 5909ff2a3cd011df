"""`cvops project restore`: a backup folder (pipelines/backup.py) into a project, on this resource or another one.

The target is a spec (another resource, region or name), or the backup's own project settings. The project and its
tags are created the way `cvops project apply` creates them (so a rerun plans nothing); the backup's tags are added to
the spec's, Negative tags keep their type. The images go through `cvops images upload`'s machinery, reading the
backup's manifest: 64 per call, every image keyed by its path, so a rerun (or a resume after a kill) adds nothing it
already added. Then the target's counts are compared with the manifest's. Training is left to `cvops train`.

The files are checked against the manifest's SHA-256 before anything is sent: a damaged backup is refused, never half
restored. Not restored: the images' own metadata (the service keeps at most 10 pairs per image, and cvops' upload
keys use them; the backup keeps the originals), iterations and publications (a new resource trains its own).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cvops.errors import CvopsError
from pipelines.backup import MANIFEST, read_backup_project, tag_counts, verify_folder
from pipelines.backup_folders import BlobFolder, LocalFolder
from pipelines.progress import NullReporter, Reporter
from pipelines.project import apply
from pipelines.service import Service
from pipelines.sources import ImageSource
from pipelines.spec import ProjectSpec, SourceSpec, TagSpec
from pipelines.upload import UploadReport, upload


@dataclass
class RestoreReport:
    project: str
    project_id: str
    images: int
    upload: UploadReport
    tags_created: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.upload.ok and not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "project_id": self.project_id, "manifest_images": self.images,
                "tags_created": self.tags_created, "upload": self.upload.to_dict(), "counts": self.counts,
                "mismatches": self.mismatches}


def target_spec(doc: dict[str, Any], spec: ProjectSpec | None, *, name: str | None = None) -> ProjectSpec:
    """The project to restore into: the spec when given (its name, domain, type), else the backup's own project;
    tags: the spec's, then every Regular tag of the backup the spec does not name. Pure."""
    project = doc["project"]
    base = spec or ProjectSpec(name=project["name"], classification_type=doc.get("classificationType") or "Multiclass",
                               domain=doc.get("domain") or "General", tags=(),
                               description=project.get("description") or "")
    if name:
        base = replace(base, name=name)
    known = {t.name.casefold() for t in base.tags}
    extra = tuple(TagSpec(t["name"], t.get("description") or "") for t in doc.get("tags", [])
                  if t.get("type", "Regular") == "Regular" and t["name"].casefold() not in known)
    return replace(base, tags=base.tags + extra)


def multiclass_conflicts(rows: list[dict[str, Any]], classification_type: str) -> list[str]:
    """Paths of images with several tags, when the target is Multiclass (the service would refuse each one). Pure."""
    if classification_type != "Multiclass":
        return []
    return [r["path"] for r in rows if len(r["tags"]) > 1]


def compare_counts(rows: list[dict[str, Any]], *, tagged: int, untagged: int,
                   tags: dict[str, int]) -> list[str]:
    """What differs between the restored project's counts and the manifest's (a project that held other images
    before shows here too). Pure."""
    out = []
    want_tagged = sum(1 for r in rows if r["tags"])
    if tagged != want_tagged:
        out.append(f"tagged images: the manifest has {want_tagged}, the project {tagged}")
    if untagged != len(rows) - want_tagged:
        out.append(f"untagged images: the manifest has {len(rows) - want_tagged}, the project {untagged}")
    for tag, n in sorted(tag_counts(rows).items()):
        if tags.get(tag.casefold(), 0) != n:
            out.append(f"tag {tag!r}: the manifest has {n} images, the project {tags.get(tag.casefold(), 0)}")
    return out


def restore(service: Service, folder: Path | LocalFolder | BlobFolder, *, spec: ProjectSpec | None = None,
            name: str | None = None, concurrency: int = 8, reporter: Reporter | None = None) -> RestoreReport:
    """From a local backup the images' bytes are sent; from ``az://`` the service pulls each image itself by a
    short-lived read-only SAS URL, as `images upload` does from Blob."""
    reporter = reporter or NullReporter()
    folder = LocalFolder(folder) if isinstance(folder, Path) else folder
    doc = read_backup_project(folder)
    with reporter.task(f"checking the files of {folder}"):
        rows, problems = verify_folder(folder)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise CvopsError(f"the backup in {folder} is damaged, nothing was restored: {shown}",
                         hint="run `cvops project backup` again into the same folder: it downloads what is missing "
                              "or differs")
    target = target_spec(doc, spec, name=name)
    conflicts = multiclass_conflicts(rows, target.classification_type)
    if conflicts:
        raise CvopsError(f"the target {target.name!r} is Multiclass and {len(conflicts)} backed-up images have several "
                         f"tags (e.g. {', '.join(conflicts[:3])}); nothing was restored",
                         hint="restore into a Multilabel project (the spec's project.classification_type)")
    applied = apply(service, target)
    project_id = applied.project_id
    assert project_id is not None  # apply creates the project when there is none
    created = [a.target for a in applied.changes if a.kind == "create_tag"]
    present = {t.name.casefold() for t in service.tags(project_id)}
    for tag in doc.get("tags", []):
        if tag.get("type") == "Negative" and tag["name"].casefold() not in present:
            service.training_call(f"create tag {tag['name']!r}", lambda c, t=tag: c.create_tag(
                project_id, t["name"], description=t.get("description") or None, type="Negative"), idempotent=False)
            created.append(tag["name"])

    if isinstance(folder, BlobFolder):
        source = ImageSource(SourceSpec("manifest", path=f"{folder.location.rstrip('/')}/{MANIFEST}"),
                             lambda: service.blob_service)
    else:
        source = ImageSource(SourceSpec("manifest", path=str(folder.path / MANIFEST)))
    uploaded = upload(service, source, project_id, via_bytes=isinstance(folder, LocalFolder),
                      concurrency=concurrency, reporter=reporter)

    tagged = int(service.training_call("count tagged images", lambda c: c.get_tagged_image_count(project_id)) or 0)
    untagged = int(service.training_call("count untagged images",
                                         lambda c: c.get_untagged_image_count(project_id)) or 0)
    tags = {t.name.casefold(): t.image_count for t in service.tags(project_id)}
    report = RestoreReport(target.name, project_id, len(rows), uploaded, created,
                           {"tagged": tagged, "untagged": untagged, "tags": tags})
    report.mismatches = compare_counts(rows, tagged=tagged, untagged=untagged, tags=tags)
    return report
