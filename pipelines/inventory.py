"""`cvops status` and `cvops export`: what a project holds, and getting a compact model out of it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from cvops.errors import CvopsError, ServiceError
from cvops.redaction import strip_query
from pipelines.progress import NullReporter, Reporter
from pipelines.service import Service
from pipelines.training import performance


def status(service: Service, project_id: str, *, threshold: float = 0.5) -> dict[str, Any]:
    project = service.training_call("get project", lambda c: c.get_project(project_id))
    domains = {d.id: d.name for d in service.training_call("list domains", lambda c: c.get_domains())}
    tags = service.tags(project_id)
    iterations = sorted(service.iterations(project_id), key=lambda it: it.created, reverse=True)
    rows = []
    for it in iterations:
        row: dict[str, Any] = {"id": it.id, "name": it.name, "status": it.status,
                               "created": it.created.isoformat() if it.created else None,
                               "training_type": it.training_type, "publish_name": it.publish_name or None,
                               "domain": domains.get(it.domain_id, it.domain_id)}
        if it.status == "Completed":
            perf = performance(service, project_id, it.id, threshold)
            row.update(precision=perf["precision"], recall=perf["recall"], map=perf["mean_average_precision"])
        rows.append(row)
    return {
        "project": {"id": project.id, "name": project.name, "description": project.description or "",
                    "classification_type": project.settings.classification_type,
                    "domain": domains.get(project.settings.domain_id, project.settings.domain_id)},
        "images": service.image_count(project_id),
        "tags": [{"name": t.name, "images": t.image_count} for t in sorted(tags, key=lambda t: t.name)],
        "iterations": rows,
        "published": {r["publish_name"]: r["name"] for r in rows if r["publish_name"]},
    }


def export(service: Service, project_id: str, iteration: Any, *, platform: str, flavor: str | None, out: Path,
           timeout: float = 600.0, reporter: Reporter | None = None,
           sleep: Callable[[float], Any] = time.sleep) -> dict[str, Any]:
    reporter = reporter or NullReporter()
    domain = service.training_call("get domain", lambda c: c.get_domain(iteration.domain_id))
    if not domain.exportable:
        raise CvopsError(f"iteration {iteration.name} was trained on the {domain.name} domain, which cannot be exported",
                         hint="only compact domains export: set project.domain to e.g. 'General (compact)', "
                              "apply, and train again")
    try:
        service.training_call(f"export {iteration.name} to {platform}",
                              lambda c: c.export_iteration(project_id, iteration.id, platform, flavor=flavor), idempotent=False)
    except ServiceError as e:
        if e.code == "BadRequestExportAlreadyInProgress":
            pass
        else:
            raise
    started = time.monotonic()
    with reporter.task(f"exporting {iteration.name} to {platform}") as task:
        while True:
            exports = service.training_call("get exports", lambda c: c.get_exports(project_id, iteration.id))
            mine = [x for x in exports if x.platform == platform and (flavor is None or x.flavor == flavor)]
            if mine and mine[0].status == "Done":
                url = mine[0].download_uri
                break
            if mine and mine[0].status == "Failed":
                raise CvopsError(f"the export of {iteration.name} to {platform} failed on the service")
            if time.monotonic() - started > timeout:
                raise CvopsError(f"the export of {iteration.name} to {platform} is not done after {timeout:.0f} s",
                                 hint="run the command again later; it picks up the running export")
            task.describe(f"exporting {iteration.name} to {platform}: {mine[0].status if mine else 'queued'}")
            sleep(2.0)
    try:
        with requests.get(url, stream=True, timeout=60) as response:
            response.raise_for_status()
            out.parent.mkdir(parents=True, exist_ok=True)
            size = 0
            length = int(response.headers.get("Content-Length") or 0) or None
            # Written beside the target and renamed when whole: a download cut short never leaves a file named
            # like a finished export (retrain takes an existing file as done).
            partial = out.with_name(out.name + ".partial")
            with partial.open("wb") as f, reporter.task(f"downloading {out.name}", total=length) as task:
                for chunk in response.iter_content(1 << 16):
                    f.write(chunk)
                    size += len(chunk)
                    task.advance(len(chunk))
            partial.replace(out)
    except requests.RequestException as e:
        # The download URL is a SAS URL: name its path, never its query.
        status = getattr(getattr(e, "response", None), "status_code", None)
        raise CvopsError(f"downloading the {platform} export of {iteration.name} from {strip_query(url)} failed"
                         + (f" (HTTP {status})" if status else f" ({type(e).__name__})"),
                         hint="run the command again; the export stays on the service") from None
    return {"iteration": iteration.name, "platform": platform, "flavor": flavor, "out": str(out), "bytes": size}
