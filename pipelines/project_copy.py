"""`cvops project copy`: Custom Vision's own ExportProject / ImportProject, then a check that nothing was lost.

Why the check: users report imports that end "Failed" with images missing, and imports that say nothing while images
are missing; the service's own answer is not proof. So the source's counts (tagged, untagged, images per tag) are
compared with the copy's once the import has finished, and any difference is named. With ``fallback`` the copy is
then completed by the path cvops controls end to end: a backup of the source (pipelines/backup.py) restored into the
imported project (pipelines/restore.py; the service keeps one image per content, so what the import did bring is
answered OKDuplicate, not doubled).

The token: it is standard base64 (``+``, ``/``, ``=``), so it must be URL-encoded in ImportProject's query string; the
SDK's query serializer does that (a raw HTTP client must do it too, or a ``+`` arrives as a space).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvops.errors import CvopsError
from pipelines.backup import backup
from pipelines.backup_folders import LocalFolder
from pipelines.progress import NullReporter, Reporter
from pipelines.restore import RestoreReport, restore
from pipelines.service import Service


@dataclass
class CopyReport:
    source_project: str
    target_project_id: str
    target_name: str
    import_status: str
    expected: dict[str, Any]
    found: dict[str, Any]
    mismatches: list[str] = field(default_factory=list)
    fallback: RestoreReport | None = None

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {"source_project": self.source_project, "target_project_id": self.target_project_id,
                "target_name": self.target_name, "import_status": self.import_status, "expected": self.expected,
                "found": self.found, "mismatches": self.mismatches,
                "fallback": self.fallback.to_dict() if self.fallback else None}


def counts(service: Service, project_id: str) -> dict[str, Any]:
    """What a copy must hold: tagged and untagged image counts, and images per tag."""
    return {"tagged": int(service.training_call("count tagged images",
                                                lambda c: c.get_tagged_image_count(project_id)) or 0),
            "untagged": int(service.training_call("count untagged images",
                                                  lambda c: c.get_untagged_image_count(project_id)) or 0),
            "tags": {t.name: t.image_count for t in service.tags(project_id)}}


def differences(expected: Mapping[str, Any], found: Mapping[str, Any]) -> list[str]:
    """Each count the copy does not match, named. Pure."""
    out = []
    for key in ("tagged", "untagged"):
        if expected[key] != found[key]:
            out.append(f"{key} images: the source has {expected[key]}, the copy {found[key]}")
    for tag in sorted(set(expected["tags"]) | set(found["tags"])):
        want, got = expected["tags"].get(tag), found["tags"].get(tag)
        if want != got:
            out.append(f"tag {tag!r}: " + ("missing in the copy" if got is None else
                                           "not in the source" if want is None else
                                           f"the source has {want} images, the copy {got}"))
    return out


def copy_project(source: Service, project_id: str, target: Service, *, name: str | None = None,
                 fallback_dir: Path | None = None, timeout: float = 1800.0, reporter: Reporter | None = None,
                 sleep: Callable[[float], Any] = time.sleep) -> CopyReport:
    reporter = reporter or NullReporter()
    source_name = source.project(project_id).name
    exported = source.training_call("export project", lambda c: c.export_project(project_id), idempotent=False)
    expected = counts(source, project_id)
    imported = target.training_call("import project", lambda c: c.import_project(exported.token, name=name),
                                    idempotent=False)
    started = time.monotonic()
    with reporter.task(f"importing {source_name} ({exported.image_count} images)") as task:
        while (imported.status or "Succeeded") == "Importing":
            if time.monotonic() - started > timeout:
                raise CvopsError(f"the import of {source_name} is still running after {timeout:.0f} s",
                                 hint="check the project on the target later; `cvops status` shows its counts")
            task.describe(f"importing {source_name}: {imported.status}")
            sleep(2.0)
            imported = target.training_call("get imported project", lambda c, i=imported.id: c.get_project(i))
    report = CopyReport(source_name, imported.id, imported.name, imported.status or "Succeeded", expected,
                        counts(target, imported.id))
    report.mismatches = differences(expected, report.found)
    if report.import_status != "Succeeded":
        report.mismatches.insert(0, f"the import ended {report.import_status}")
    if report.mismatches and fallback_dir is not None:
        backed = backup(source, project_id, LocalFolder(fallback_dir), reporter=reporter)
        if not backed.ok:
            raise CvopsError(f"the fallback backup of {source_name} differs from the service: "
                             + "; ".join(backed.mismatches[:5]), hint="run the copy again")
        report.fallback = restore(target, LocalFolder(fallback_dir), name=imported.name, reporter=reporter)
        report.found = counts(target, imported.id)
        report.mismatches = differences(expected, report.found)
    return report
