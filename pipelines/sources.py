"""Labelled image sources: a Blob container + prefix (one folder per tag), a local folder laid out the same way, or a
manifest (CSV or JSON Lines of path + tags) for multi-label sets.

Each image gets a *source key*: its path relative to the source root (``beach/0001.jpg``) or, for a manifest, the path
as the manifest writes it. The key, not the bytes or the URL, identifies an image across runs, so a rerun can skip what
is already uploaded without reading a single image (see batching.py). Manifest parsing is pure (:func:`parse_manifest`);
listing and reading are thin layers over the filesystem and the Blob SDK.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from cvops.errors import ConfigurationError, CvopsError, from_exception
from pipelines.spec import SOURCE_SCHEME, SourceSpec

TAG_SEPARATORS = (";", "|")
CSV_QUOTE = "'"
"""A CSV tags cell's leading quote, removed on reading: ``review export`` writes it before a cell a spreadsheet would
run as a formula (:data:`CSV_FORMULA_STARTS`), and spreadsheets treat it as "this cell is text"."""
CSV_FORMULA_STARTS = "=+-@\t\r"


@dataclass(frozen=True)
class SourceImage:
    """One labelled image: its source key, its tags, where it is (a local path or ``az://container/blob``)."""

    key: str
    tags: tuple[str, ...]
    location: str
    size: int | None = None

    @property
    def is_blob(self) -> bool:
        return self.location.startswith(SOURCE_SCHEME)


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    tags: tuple[str, ...]
    line: int


def split_az(location: str) -> tuple[str, str]:
    """``az://container/name`` -> (container, name)."""
    container, _, name = location[len(SOURCE_SCHEME):].partition("/")
    return container, name


def _split_tags(value: object, *, where: str, allow_none: bool = False) -> tuple[str, ...]:
    """An entry's tags. ``allow_none``: an explicit empty list (a JSON Lines ``"tags": []``, as a project backup writes
    for an untagged image) means "upload it untagged"; an empty CSV cell stays an error, being far more often a slip."""
    if isinstance(value, list):  # JSON: each tag exactly as written (a legal tag may begin or end with a space)
        tags = [t if isinstance(t, str) else str(t).strip() for t in value]
    elif isinstance(value, str):
        text = value
        for sep in TAG_SEPARATORS[1:]:
            text = text.replace(sep, TAG_SEPARATORS[0])
        tags = [t.strip() for t in text.split(TAG_SEPARATORS[0])]
    else:
        raise ConfigurationError(f"{where}: tags must be a list or a ';'-separated string, not {type(value).__name__}")
    out = tuple(dict.fromkeys(t for t in tags if t))
    if not out and not (allow_none and value == []):
        raise ConfigurationError(f"{where}: the image has no tags", hint="give at least one tag per image")
    return out


def parse_manifest(text: str, *, name: str) -> list[ManifestEntry]:
    """Entries of a manifest. CSV: a header with ``path`` and ``tags`` columns, tags separated by ``;`` or ``|``
    (spaces around each are dropped; one leading ``'`` of the tags cell is removed: :data:`CSV_QUOTE`).
    JSON Lines: ``{"path": ..., "tags": [...]}`` per line, path and tags taken exactly as written (what
    ``review export`` writes reads back the same). Errors name the manifest and the line."""
    entries: list[ManifestEntry] = []
    if name.lower().endswith(".jsonl"):
        # Lines end at "\n" only (JSON Lines): str.splitlines would also split at U+2028, U+0085 and the like,
        # which may stand unescaped inside a JSON string (a blob name or a tag).
        for number, raw in enumerate(text.split("\n"), start=1):
            if not raw.strip():
                continue
            where = f"{name} line {number}"
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as e:
                raise ConfigurationError(f"{where} is not JSON: {e.msg}") from None
            if not isinstance(row, dict) or not isinstance(row.get("path"), str) or not row["path"].strip():
                raise ConfigurationError(f"{where}: expected an object with a \"path\" string and \"tags\"")
            # The path exactly as written: a blob name may end with a space, and stripping it named another blob.
            entries.append(ManifestEntry(row["path"], _split_tags(row.get("tags"), where=where, allow_none=True),
                                         number))
    else:
        reader = csv.DictReader(io.StringIO(text))
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
        if "path" not in fields or "tags" not in fields:
            raise ConfigurationError(f"{name}: the CSV header must name the columns path and tags, found {fields}",
                                     hint="first line: path,tags")
        reader.fieldnames = fields
        for row in reader:
            where = f"{name} line {reader.line_num}"
            path = (row.get("path") or "").strip()
            if not path:
                raise ConfigurationError(f"{where}: empty path")
            cell = row.get("tags") or ""
            cell = cell[len(CSV_QUOTE):] if cell.startswith(CSV_QUOTE) else cell
            entries.append(ManifestEntry(path, _split_tags(cell, where=where), reader.line_num))
    if not entries:
        raise ConfigurationError(f"manifest {name} lists no images")
    dupes = _duplicates(e.path for e in entries)
    if dupes:
        raise ConfigurationError(f"manifest {name} lists {dupes[0]!r} more than once",
                                 hint="give each image one line with all its tags")
    return entries


def _duplicates(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for v in values:
        if v in seen:
            out.append(v)
        seen.add(v)
    return out


def _tag_from_relative(rel: str) -> str | None:
    """``beach/0001.jpg`` -> ``beach``; files at the root and hidden files are not labelled images."""
    parts = rel.split("/")
    if len(parts) < 2 or any(p.startswith(".") for p in parts):
        return None
    return parts[0]


class ImageSource:
    """Lists and reads one source. ``blob_service`` is created only when the source (or a manifest entry) is in Blob."""

    def __init__(self, spec: SourceSpec, blob_service: Callable[[], BlobServiceClient] | None = None):
        self.spec = spec
        self._blob_service_factory = blob_service
        self._blob_service: BlobServiceClient | None = None

    def __str__(self) -> str:
        return str(self.spec)

    @property
    def blob_service(self) -> BlobServiceClient:
        if self._blob_service is None:
            if self._blob_service_factory is None:
                raise ConfigurationError(f"source {self.spec} is in Blob Storage but no storage account is configured",
                                         hint="set AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_URL")
            self._blob_service = self._blob_service_factory()
        return self._blob_service

    # listing ------------------------------------------------------------------------------------------------------
    def list(self) -> list[SourceImage]:
        """Every labelled image of the source, sorted by key (a stable order makes batches reproducible)."""
        if self.spec.kind == "blob":
            images = self._list_blob()
        elif self.spec.kind == "folder":
            images = self._list_folder()
        else:
            images = self._list_manifest()
        if not images:
            raise ConfigurationError(f"source {self.spec} holds no labelled images",
                                     hint="lay images out one folder per tag (<tag>/<file>) or use a manifest")
        return sorted(images, key=lambda im: im.key)

    def _list_folder(self) -> list[SourceImage]:
        root = Path(self.spec.path)
        if self.spec.path.startswith(SOURCE_SCHEME):
            raise ConfigurationError(f"{self.spec.path} is not a local folder", hint="write az://container/prefix")
        if not root.is_dir():
            raise ConfigurationError(f"image folder {root} does not exist",
                                     hint="give a folder laid out one sub-folder per tag")
        out = []
        for path in root.rglob("*"):
            if not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            tag = _tag_from_relative(rel)
            if tag:
                out.append(SourceImage(rel, (tag,), str(path), path.stat().st_size))
        return out

    def _list_blob(self) -> list[SourceImage]:
        container = self.blob_service.get_container_client(self.spec.container)
        out = []
        try:
            for blob in container.list_blobs(name_starts_with=self.spec.prefix or None):
                rel = blob.name[len(self.spec.prefix):]
                tag = _tag_from_relative(rel)
                if tag:
                    out.append(SourceImage(rel, (tag,), f"{SOURCE_SCHEME}{self.spec.container}/{blob.name}", blob.size))
        except ResourceNotFoundError:
            raise ConfigurationError(f"container {self.spec.container!r} does not exist in the storage account",
                                     hint="check the container name (data.training.container or az://<container>/...)"
                                     ) from None
        except AzureError as e:  # a wrong key, a SAS not allowed to list, unreachable: the one mapping decides
            raise from_exception(e) or CvopsError(
                f"cannot list {self.spec}: {_first_line(e)}",
                hint="check the storage settings and that your identity may read the container") from None
        return out

    def _list_manifest(self) -> list[SourceImage]:
        path = self.spec.path
        text = self._read_location(path).decode("utf-8-sig")
        entries = parse_manifest(text, name=path)
        base = posixpath.dirname(path) if path.startswith(SOURCE_SCHEME) else str(Path(path).parent)
        out = []
        for entry in entries:
            if entry.path.startswith(SOURCE_SCHEME):
                location = entry.path
            elif path.startswith(SOURCE_SCHEME):
                location = posixpath.join(base, entry.path)
            else:
                location = str(Path(base) / entry.path)
            out.append(SourceImage(entry.path, entry.tags, location))
        return out

    # reading ------------------------------------------------------------------------------------------------------
    def read(self, image: SourceImage) -> bytes:
        return self._read_location(image.location)

    def _read_location(self, location: str) -> bytes:
        if location.startswith(SOURCE_SCHEME):
            container, name = split_az(location)
            try:
                return self.blob_service.get_blob_client(container, name).download_blob().readall()
            except ResourceNotFoundError:
                raise CvopsError(f"blob {location} does not exist") from None
            except AzureError as e:
                raise from_exception(e) or CvopsError(f"cannot read {location}: {_first_line(e)}") from None
        try:
            return Path(location).read_bytes()
        except FileNotFoundError:
            raise CvopsError(f"file {location} does not exist") from None
        except OSError as e:
            raise CvopsError(f"cannot read {location}: {e.strerror}") from None

    def sas_url(self, image: SourceImage, *, minutes: int = 60) -> str:
        """A short-lived read-only URL the service fetches the image from (Blob images only)."""
        from cvops.clients import read_only_blob_sas_url

        container, name = split_az(image.location)
        return read_only_blob_sas_url(self.blob_service.get_blob_client(container, name), minutes=minutes)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
