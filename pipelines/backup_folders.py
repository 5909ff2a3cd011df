"""Where a project backup (pipelines/backup.py) is written and read: a local folder, or a Blob container + prefix.

Both hold the same layout and answer the same few questions, so backup, restore and the AutoML export need not know
which: read a small file, write a file so that no half file is ever seen under its name, list what an earlier run
completed (with each image's SHA-256), and hash what is there. Locally, a file is written to a temporary name and
renamed, and a journal line records it; in Blob Storage, a blob exists only once its upload is committed, and its
metadata carries its SHA-256 (the listing is the journal).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvops.errors import ConfigurationError

IMAGES = "images"
JOURNAL = ".cvops-backup/downloaded.jsonl"


@dataclass(frozen=True)
class Saved:
    """An image whose file is complete: a journal line, and the fields of its manifest line."""

    id: str
    path: str  # relative to the backup folder, with '/'
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "path": self.path, "sha256": self.sha256, "size": self.size}


def read_journal(lines: Iterable[str]) -> dict[str, Saved]:
    """The journal's entries by image id; a torn last line (the process killed mid-write) is ignored. Pure."""
    out: dict[str, Saved] = {}
    for raw in lines:
        try:
            row = json.loads(raw)
            saved = Saved(str(row["id"]), str(row["path"]), str(row["sha256"]), int(row["size"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        out[saved.id] = saved
    return out


# files --------------------------------------------------------------------------------------------------------------
def file_digest(path: Path) -> tuple[int, str] | None:
    """(size, SHA-256) of a file, or None when there is none."""
    try:
        digest = hashlib.sha256()
        size = 0
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
        return size, digest.hexdigest()
    except FileNotFoundError:
        return None


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary name beside ``path``, flush to disk, then rename: a kill leaves no half file under the
    final name (a stray ``.part`` file at most, replaced by the next run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.part-{os.getpid()}")
    with temp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


def _append_line(path: Path, row: Mapping[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


# where the backup is written: a local folder or a Blob container + prefix ----------------------------------------------
class LocalFolder:
    """A backup folder on disk: files written to a temporary name and renamed, a journal of completed images."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    def prepare(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def read_text(self, name: str) -> str | None:
        try:
            return (self.path / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        write_atomically(self.path / name, data)

    def journal(self) -> dict[str, Saved]:
        text = self.read_text(JOURNAL)
        return read_journal(text.splitlines() if text else [])

    def record(self, saved: Saved) -> None:
        (self.path / JOURNAL).parent.mkdir(parents=True, exist_ok=True)
        _append_line(self.path / JOURNAL, saved.to_dict())

    def quick_digest(self, name: str) -> tuple[int, str] | None:
        return file_digest(self.path / name)

    def head(self, name: str, length: int) -> bytes:
        """The first ``length`` bytes (an image's header: its format and size)."""
        with (self.path / name).open("rb") as f:
            return f.read(length)

    def digest(self, name: str) -> tuple[int, str] | None:
        return file_digest(self.path / name)


class BlobFolder:
    """A backup under ``az://container/prefix``. A blob appears only once its upload is committed (no half files),
    and each image blob carries its SHA-256 in its metadata: the listing is the journal, so a rerun downloads nothing
    the container holds. The final check downloads every image again and hashes it."""

    def __init__(self, blob_service: Any, location: str) -> None:
        container, _, prefix = location[len("az://"):].partition("/")
        if not container:
            raise ConfigurationError(f"{location} names no container", setting="--out",
                                     hint="write az://container/prefix")
        self.location = location
        self.container = blob_service.get_container_client(container)
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._listed: dict[str, tuple[int, str]] = {}

    def __str__(self) -> str:
        return self.location

    def prepare(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):  # an existing container is resumed
            self.container.create_container()

    def read_text(self, name: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.container.download_blob(self.prefix + name).readall().decode("utf-8")
        except ResourceNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        meta = {"sha256": hashlib.sha256(data).hexdigest()}
        self.container.upload_blob(self.prefix + name, data, overwrite=True, metadata=meta)

    def journal(self) -> dict[str, Saved]:
        out: dict[str, Saved] = {}
        for blob in self.container.list_blobs(name_starts_with=f"{self.prefix}{IMAGES}/", include=["metadata"]):
            path = blob.name[len(self.prefix):]
            sha = (blob.metadata or {}).get("sha256")
            if sha:
                image_id = Path(path).stem
                out[image_id] = Saved(image_id, path, sha, blob.size)
        self._listed = {s.path: (s.size, s.sha256) for s in out.values()}
        return out

    def record(self, saved: Saved) -> None:
        pass  # the blob's own metadata is the record

    def quick_digest(self, name: str) -> tuple[int, str] | None:
        return self._listed.get(name)

    def head(self, name: str, length: int) -> bytes:
        """The first ``length`` bytes (an image's header: its format and size), one ranged read."""
        return self.container.download_blob(self.prefix + name, offset=0, length=length).readall()

    def digest(self, name: str) -> tuple[int, str] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            data = self.container.download_blob(self.prefix + name).readall()
        except ResourceNotFoundError:
            return None
        return len(data), hashlib.sha256(data).hexdigest()


def open_folder(location: str, blob_service: Callable[[], Any]) -> LocalFolder | BlobFolder:
    """``az://container/prefix`` or a local folder."""
    return BlobFolder(blob_service(), location) if location.startswith("az://") else LocalFolder(Path(location))
