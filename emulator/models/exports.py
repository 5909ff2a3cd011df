"""Model export: ExportIteration, GetExports and the package they point at.

An iteration trained on a compact classification domain *is* an ONNX graph (`emulator.compact_model`), so exporting it
means writing that graph, with its labels, into one zip. The export answers `Exporting` at once and a background thread
writes the package, as Azure's export queue does; GetExports then lists it `Done` with a `downloadUri` that this
service answers without a key (a random token in the path plays the part of Azure's SAS signature).

What it produces: platform ONNX, flavor none (float32) or `OnnxFloat16`. Everything else a compact domain lists on Azure
(CoreML, TensorFlow, DockerFile, VAIDK, OpenVino, the ONNX10/ONNX12 flavors) is refused with a message naming what it
can produce, and nothing advertises it (`advertised_platforms`).

Records live in the blob store next to the iteration (`iterations/<id>/exports.json`), packages under
`exports/<token>.zip`; both go with the iteration.
"""

from __future__ import annotations

import importlib
import io
import logging
import re
import secrets
import threading
import zipfile
from typing import Any

from ..exceptions import BadRequest, NotFound
from .base import BackendBase, now
from .limits import EXPORT_PLATFORMS, EXPORTED_FLAVORS, EXPORTED_PLATFORMS

log = logging.getLogger(__name__)

EXPORT_TOKEN = re.compile(r"^[0-9a-f]{64}$")
PACKAGE_NAME = "model.zip"
WHAT_IT_EXPORTS = "platform ONNX with no flavor (float32) or flavor OnnxFloat16"


def exports_domain(domain: dict[str, Any]) -> bool:
    """Whether this service exports models of `domain`: a compact (exportable on Azure) classification domain."""
    return bool(domain.get("exportable")) and domain.get("type") == "Classification"


def advertised_platforms(domain: dict[str, Any]) -> list[str]:
    """The platforms a domain (and a completed iteration trained on it) may advertise: only what is really produced."""
    if not exports_domain(domain):
        return []
    return [p for p in domain.get("exportablePlatforms", []) if p in EXPORTED_PLATFORMS]


def _canonical(value: str | None, names: tuple[str | None, ...]) -> str | None:
    """`value` spelled as in `names` (ASP.NET binds enum values case-insensitively), or itself when unknown."""
    if not value:
        return None
    return next((n for n in names if n is not None and n.lower() == value.lower()), value)


def package(model: bytes, labels: list[str]) -> bytes:
    """The export zip: `model.onnx` and `labels.txt` (one tag name a line, in the model's output order)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("model.onnx", model)
        z.writestr("labels.txt", "".join(f"{name}\n" for name in labels))
    return buffer.getvalue()


class ExportModels(BackendBase):
    """ExportIteration / GetExports for compact-domain iterations, and the packages' bytes by token."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._exports_lock = threading.Lock()
        self._export_threads: set[str] = set()  # tokens of the exports this process is writing

    @staticmethod
    def _exports_key(iteration_id: str) -> str:
        return f"iterations/{iteration_id}/exports.json"

    def _records(self, iteration_id: str) -> list[dict[str, Any]]:
        return list(self.blobs.get_json(self._exports_key(iteration_id)) or [])

    def get_exports(self, project_id: str, iteration_id: str, *, base_url: str = "") -> list[dict[str, Any]]:
        project = self._project_row(project_id)
        row = self._iteration_row(project["id"], iteration_id)
        with self._exports_lock:
            records = self._records(row["id"])
            stale = [r for r in records if r["status"] == "Exporting" and r["token"] not in self._export_threads]
            for r in stale:  # its thread died with a previous process: say so, a new ExportIteration starts over
                r["status"] = "Failed"
            if stale:
                self.blobs.put_json(self._exports_key(row["id"]), records)
        return [self._export_json(r, base_url) for r in records]

    @staticmethod
    def _export_json(record: dict[str, Any], base_url: str) -> dict[str, Any]:
        done = record["status"] == "Done"
        return {
            "platform": record["platform"],
            "status": record["status"],
            "downloadUri": f"{base_url}/customvision/local/exports/{record['token']}/{PACKAGE_NAME}" if done else "",
            **({"flavor": record["flavor"]} if record["flavor"] else {}),
            "newerVersionAvailable": False,
        }

    def export_iteration(self, project_id: str, iteration_id: str, platform: str, flavor: str | None = None, *,
                         base_url: str = "") -> dict[str, Any]:
        project = self._project_row(project_id)
        row = self._iteration_row(project["id"], iteration_id)
        platform = _canonical(platform, EXPORT_PLATFORMS) or ""
        flavor = _canonical(flavor, EXPORTED_FLAVORS)
        if platform not in EXPORT_PLATFORMS:
            raise BadRequest(f"platform {platform!r} is unknown; use one of {', '.join(EXPORT_PLATFORMS)}.",
                             code="BadRequestInvalid")
        if row["status"] == "Training":
            raise BadRequest(f"Iteration {row['name']!r} is still training; export it once it has completed.",
                             code="BadRequestExportWhileTraining")
        row = self._completed_iteration(project["id"], row["id"])
        domain = self.domains.get(row["domain_id"] or "", {})
        if not exports_domain(domain):
            raise BadRequest(f"Iteration {row['name']!r} was trained on the {domain.get('name')!r} domain, which cannot "
                             "be exported; only compact domains export: choose one (e.g. 'General (compact)') and "
                             "train again.", code="BadRequestExportValidationFailed")
        if platform not in EXPORTED_PLATFORMS or flavor not in EXPORTED_FLAVORS:
            asked = platform + (f" flavor {flavor}" if flavor else "")
            raise BadRequest(f"The local service cannot produce {asked}; it exports {WHAT_IT_EXPORTS}. Export other "
                             "platforms from Azure Custom Vision.", code="BadRequestNotSupported")
        stored = compact_stored(self.blobs, row["id"])
        if stored is None:
            raise BadRequest(f"Iteration {row['name']!r} has no compact model stored (it was trained before the local "
                             "service exported models); train the project again.",
                             code="BadRequestExportValidationFailed")
        with self._exports_lock:
            records = self._records(row["id"])
            same = next((r for r in records if r["platform"] == platform and r["flavor"] == flavor), None)
            if same is not None and same["status"] != "Failed":
                # Azure refuses a second export of the same iteration to the same platform, done or not (its message
                # reads "<iteration id> is already queued for export"; Azure/azure-sdk-for-python#23922): GetExports
                # has it.
                raise BadRequest(f"{row['id']} is already queued for export to {platform}"
                                 f"{' ' + flavor if flavor else ''} (status {same['status']}); GetExports lists it, "
                                 "with its downloadUri once Done.", code="BadRequestExportAlreadyInProgress")
            record = {"platform": platform, "flavor": flavor, "status": "Exporting", "token": secrets.token_hex(32),
                      "requested": now()}
            records = [r for r in records if r is not same] + [record]
            self.blobs.put_json(self._exports_key(row["id"]), records)
            self._export_threads.add(record["token"])
        threading.Thread(target=self._write_package, args=(row["id"], record["token"], stored, flavor),
                         name=f"cv-export-{row['id'][:8]}", daemon=True).start()
        return self._export_json(record, base_url)

    def _write_package(self, iteration_id: str, token: str, stored: Any, flavor: str | None) -> None:
        status = "Failed"
        try:
            compact = _compact_model()
            self.blobs.put(f"exports/{token}.zip", package(compact.model_bytes(stored, flavor=flavor),
                                                           compact.labels(stored)))
            status = "Done"
        except Exception:  # any failure is the export's status, as on Azure; the log has the cause
            log.exception("export %s of iteration %s failed", token, iteration_id)
        finally:
            with self._exports_lock:
                records = self._records(iteration_id)
                for r in records:
                    if r["token"] == token:
                        r["status"] = status
                if any(r["token"] == token for r in records):  # the iteration may have been deleted meanwhile
                    self.blobs.put_json(self._exports_key(iteration_id), records)
                else:
                    self.blobs.delete(f"exports/{token}.zip")
                self._export_threads.discard(token)

    def export_package(self, token: str) -> bytes:
        """The zip a `downloadUri` names (NotFound for any other token: the token is the only credential)."""
        data = self.blobs.get(f"exports/{token}.zip") if EXPORT_TOKEN.match(token) else None
        if data is None:
            raise NotFound("No export has this address (it was deleted with its iteration, or never existed).",
                           code="NotFound")
        return data


def compact_stored(blobs: Any, iteration_id: str) -> dict[str, Any] | None:
    """What `compact_model` builds the graph from: the iteration's stored model, when it is a compact graph's (an
    iteration trained before compact training existed, or on another domain, has none)."""
    stored = blobs.get_json(f"iterations/{iteration_id}/model.json")
    return stored if stored is not None and _compact_model().is_compact_model(stored) else None


def _compact_model() -> Any:
    """`emulator.compact_model`, imported when first needed (onnx is only needed to export and serve compact models)."""
    return importlib.import_module("emulator.compact_model")
