"""ExportProject and ImportProject: a project's tags and images moved to another resource by an opaque token.

As on Azure, ExportProject answers counts and a token that "grants access to import this project to all that have the
token"; ImportProject on any resource (here: any local service that can reach this one) creates a new project from it.
The token is standard base64 (``+``, ``/``, ``=``), so a client that puts it in the query string without URL-encoding
it fails as it does on Azure (a ``+`` arrives as a space): BadRequestInvalidImportToken says so. It always starts with
``++++`` (a fixed header), so that failure is certain, not one token in three.

ImportProject answers at once with the new project (status ``Importing``) and adds the images in the background;
the project reads ``Succeeded`` once they are in (``Failed`` if adding them failed). The package behind a token is
read when it is imported (the project as it is then), at a keyless address whose random
part is the credential, like an export's downloadUri. Iterations are not moved (Azure moves them; an import here has to
be trained again: say so in a test that cares).

Fault injection (``--import-drop-images N``): the import leaves out the last N images and still ends ``Succeeded``,
the failure users report (ImportProject finishing with images missing), so a client's count check can be tested.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any

from ..exceptions import BadRequest, NotFound
from .base import BackendBase
from .training_images import ImageSource

log = logging.getLogger(__name__)

TOKEN_HEADER = b"\xfb\xef\xbe"  # base64 "++++"
PACKAGE_ROUTE = "/customvision/local/projectexports/{secret}"


class ProjectTransferModels(BackendBase):
    """Mixed into the backend: uses its projects, tags and images."""

    import_drop_images: int = 0

    @property
    def import_statuses(self) -> dict[str, str]:
        """Project id -> ``Importing`` or ``Failed`` while an import is running or after it failed (else absent)."""
        return self.__dict__.setdefault("_import_statuses", {})

    def export_project(self, project_id: str, *, base_url: str) -> dict[str, Any]:
        project = self.get_project(project_id)
        secret = secrets.token_urlsafe(24)
        self.blobs.put_json(f"project-exports/{secret}", {"projectId": project["id"]})
        payload = json.dumps({"source": base_url, "export": secret}).encode()
        images = self.count_images(project["id"])
        return {"iterationCount": len(self.get_iterations(project["id"])),
                "imageCount": images, "tagCount": len(self.get_tags(project["id"])),
                "regionCount": 0, "estimatedImportTimeInMS": 50 * images + 1000,
                "token": base64.b64encode(TOKEN_HEADER + payload).decode()}

    def project_package(self, secret: str) -> bytes:
        """What an import reads: the project's settings, tags and images (bytes base64) with their tags."""
        readable = secret.replace("-", "").replace("_", "").isalnum()
        ref = self.blobs.get_json(f"project-exports/{secret}") if readable else None
        if ref is None:
            raise NotFound("No project export has this address.", code="NotFound")
        project = self.get_project(ref["projectId"])
        tags = self.get_tags(project["id"])
        images, skip = [], 0
        while True:
            page = self.get_images(project["id"], order_by="Oldest", take=256, skip=skip)
            for image in page:
                data = self.get_image_bytes(project["id"], image["id"])
                images.append({"data": base64.b64encode(data).decode(), "metadata": image.get("metadata"),
                               "tags": [t["tagName"] for t in image.get("tags") or []]})
            if len(page) < 256:
                break
            skip += 256
        return json.dumps({"project": {"name": project["name"], "description": project["description"],
                                       "settings": project["settings"]},
                           "tags": [{"name": t["name"], "description": t.get("description"), "type": t["type"]}
                                    for t in tags],
                           "images": images}).encode()

    def import_project(self, token: str, name: str | None, fetch: Callable[[str], bytes], *,
                       base_url: str = "") -> dict[str, Any]:
        try:
            raw = base64.b64decode(token, validate=True)
            if not raw.startswith(TOKEN_HEADER):
                raise ValueError("no header")
            ref = json.loads(raw[len(TOKEN_HEADER):])
            url = ref["source"].rstrip("/") + PACKAGE_ROUTE.format(secret=ref["export"])
        except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
            hint = (" It holds spaces: a '+' of the token arrived as a space, so the token was not URL-encoded in the "
                    "query string." if " " in token else "")
            raise BadRequest(f"The import token is not valid.{hint}", code="BadRequestInvalidImportToken") from None
        try:
            package = json.loads(fetch(url))
        except Exception as exc:  # the source is unreachable, or the export is gone
            raise BadRequest(f"The project export could not be read: {exc}",
                             code="ErrorProjectImportRequestFailed") from None
        source = package["project"]
        settings = source["settings"]
        project = self.create_project(name or source["name"], source.get("description"),
                                      settings["domainId"], settings.get("classificationType"),
                                      settings.get("targetExportPlatforms") or [])
        pid = project["id"]
        tag_ids = {t["name"]: self.create_tag(pid, t["name"], t.get("description"), t.get("type"))["id"]
                   for t in package["tags"]}
        images = package["images"]
        if self.import_drop_images:
            images = images[:max(0, len(images) - self.import_drop_images)]
        self.import_statuses[pid] = "Importing"
        answer = self.get_project(pid)
        threading.Thread(target=self._import_images, args=(pid, images, tag_ids, base_url), daemon=True,
                         name=f"import-{pid}").start()
        return answer

    def _import_images(self, pid: str, images: list[dict[str, Any]], tag_ids: dict[str, str], base_url: str) -> None:
        """As Azure does, after ImportProject has answered: the project reads ``Importing`` until this ends."""
        try:
            for image in images:
                source_image = ImageSource(label='"imported"', data=base64.b64decode(image["data"]),
                                           tag_ids=[tag_ids[t] for t in image["tags"]])
                self.create_images(pid, [source_image], metadata=image.get("metadata"), base_url=base_url)
        except Exception:  # any failure is the import's status, as on Azure; the log has the cause
            log.exception("import into project %s failed", pid)
            self.import_statuses[pid] = "Failed"
            return
        self.import_statuses.pop(pid, None)
