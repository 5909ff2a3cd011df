"""`cvops dataset export --format automl`: a project backup (pipelines/backup.py) as Azure ML AutoML for images' training
data: JSON Lines plus the ``MLTable`` file that points at them, so the successor trains on exactly what Custom Vision
held.

The format (Microsoft Learn, "Data schemas to train computer vision models with automated machine learning", and
"Prepare data for computer vision tasks"): one JSON object a line, ``image_url`` an ``azureml://`` URI of the image in a
datastore (``azureml://datastores/<name>/paths/<path>``: the short form, resolved in the job's workspace),
``image_details`` with ``format``, ``width`` and ``height`` (``"400px"``), and ``label``: a string for a Multiclass
project, a list of strings for a Multilabel one. The ``MLTable`` reads the lines (``read_json_lines``) and turns
``image_url`` into a stream (``convert_column_types`` to ``stream_info``).

The paths are the backup's own (``images/<id>.<ext>``) under ``--prefix`` (default: the backup folder's name), so
uploading the backup folder to the datastore at that prefix (azcopy, or `az storage blob upload-batch`) makes every
URI resolve. Untagged images are left out (AutoML needs a label) and counted.

Refused before anything is written, as AutoML would refuse it later: fewer than 10 labelled images, a tag of the
project with no image, an image in a format AutoML does not read (GIF, which Custom Vision takes, is not in its list).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from cvops.errors import ConfigurationError, CvopsError
from pipelines.backup import read_backup_project, verify_folder
from pipelines.backup_folders import BlobFolder, LocalFolder, write_atomically

MIN_IMAGES = 10  # AutoML for images refuses a training set with fewer
FORMATS = {"JPEG": "jpg", "PNG": "png", "BMP": "bmp", "TIFF": "tiff"}  # Pillow's name -> the schema's format value
MLTABLE = """\
# Azure ML AutoML for images: {jsonl}, written by `cvops dataset export --format automl`.
paths:
  - file: ./{jsonl}
transformations:
  - read_json_lines:
      encoding: utf8
      invalid_lines: error
      include_path_column: false
  - convert_column_types:
      - columns: image_url
        column_type: stream_info
"""


@dataclass(frozen=True)
class Labelled:
    """One backed-up image as the export sees it."""

    path: str  # relative to the backup folder
    sha256: str
    tags: tuple[str, ...]
    format: str | None  # Pillow's name
    width: int | None
    height: int | None


def image_url(datastore: str, prefix: str, path: str) -> str:
    """``azureml://datastores/<datastore>/paths/<prefix>/<path>``. Pure."""
    joined = "/".join(p.strip("/") for p in (prefix, path) if p.strip("/"))
    return f"azureml://datastores/{datastore}/paths/{joined}"


def problems(images: Sequence[Labelled], project_tags: Sequence[str]) -> list[str]:
    """What AutoML would refuse, each named; empty when the set can be exported. Pure."""
    out: list[str] = []
    labelled = [im for im in images if im.tags]
    if len(labelled) < MIN_IMAGES:
        out.append(f"{len(labelled)} labelled images; AutoML for images needs at least {MIN_IMAGES}")
    counts = Counter(t for im in labelled for t in im.tags)
    empty = [t for t in project_tags if not counts.get(t)]
    if empty:
        out.append(f"tag(s) with no image: {', '.join(repr(t) for t in empty)} (AutoML refuses a class with no "
                   "example: add images, or delete the tag in the project and back up again)")
    bad = [im for im in labelled if im.format not in FORMATS]
    if bad:
        shown = ", ".join(f"{im.path} ({im.format or 'unreadable'})" for im in bad[:5])
        out.append(f"{len(bad)} image(s) in a format AutoML does not read (it reads JPEG, PNG, BMP, TIFF): {shown}"
                   + (" and more" if len(bad) > 5 else ""))
    return out


def line(image: Labelled, *, multilabel: bool, datastore: str, prefix: str) -> dict[str, Any]:
    """One JSON Lines object, as the schema page's examples write it. Pure."""
    return {"image_url": image_url(datastore, prefix, image.path),
            "image_details": {"format": FORMATS[image.format or ""], "width": f"{image.width}px",
                              "height": f"{image.height}px"},
            "label": sorted(image.tags) if multilabel else image.tags[0]}


def split(images: Sequence[Labelled], fraction: float) -> tuple[list[Labelled], list[Labelled]]:
    """(train, validation): per label set, the images ordered by SHA-256 and the first ``round(n * fraction)`` to
    validation, so every label set is in both where it can be and a rerun splits the same way. Pure."""
    groups: dict[tuple[str, ...], list[Labelled]] = {}
    for im in images:
        groups.setdefault(tuple(sorted(im.tags)), []).append(im)
    train: list[Labelled] = []
    validation: list[Labelled] = []
    for key in sorted(groups):
        ordered = sorted(groups[key], key=lambda im: hashlib.sha256((im.sha256 + "|validation").encode()).hexdigest())
        cut = round(len(ordered) * fraction) if len(ordered) > 1 else 0
        validation += ordered[:cut]
        train += ordered[cut:]
    return sorted(train, key=lambda im: im.path), sorted(validation, key=lambda im: im.path)


def jsonl(rows: Sequence[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


HEADER_BYTES = 1 << 16  # enough for Pillow to read the format and size of a JPEG, PNG, BMP, GIF or TIFF header


def _inspect(folder: LocalFolder | BlobFolder, row: Mapping[str, Any]) -> Labelled:
    fmt = width = height = None
    try:
        with Image.open(io.BytesIO(folder.head(row["path"], HEADER_BYTES))) as image:
            fmt, (width, height) = image.format, image.size
    except (OSError, ValueError):
        pass
    return Labelled(row["path"], row["sha256"], tuple(row.get("tags") or ()), fmt, width, height)


def export_automl(folder: Path | LocalFolder | BlobFolder, out: Path, *, datastore: str, prefix: str | None = None,
                  validation_fraction: float = 0.0) -> dict[str, Any]:
    """Write ``out/train/{train.jsonl,MLTable}`` (and ``out/validation/...`` with a fraction) from a backup, local or
    in Blob Storage (then only the images' headers are read, and the default prefix is the backup's own)."""
    folder = LocalFolder(folder) if isinstance(folder, Path) else folder
    if not datastore.strip() or "/" in datastore:
        raise ConfigurationError(f"--datastore {datastore!r} is not a datastore name", setting="--datastore",
                                 hint="the name of the Azure ML datastore the images will be in, e.g. workspaceblobstore")
    doc = read_backup_project(folder)
    rows, damaged = verify_folder(folder)
    if damaged:
        raise CvopsError(f"the backup in {folder} is damaged: " + "; ".join(damaged[:5]),
                         hint="run `cvops project backup` again into the same folder")
    multilabel = doc.get("classificationType") == "Multilabel"
    images = [_inspect(folder, r) for r in rows]
    refused = problems(images, [t["name"] for t in doc.get("tags", []) if t.get("type", "Regular") == "Regular"])
    if refused:
        raise CvopsError("not exported, AutoML would refuse it: " + "; ".join(refused),
                         hint="fix the project (or its backup) and export again; nothing was written")
    labelled = [im for im in images if im.tags]
    if prefix is None:
        prefix = folder.path.resolve().name if isinstance(folder, LocalFolder) else folder.prefix.rstrip("/")
    train, validation = split(labelled, validation_fraction) if validation_fraction else (labelled, [])
    written = {}
    for name, part in (("train", train), ("validation", validation)):
        if not part:
            continue
        target = out / name
        target.mkdir(parents=True, exist_ok=True)
        rows_out = [line(im, multilabel=multilabel, datastore=datastore, prefix=prefix) for im in part]
        write_atomically(target / f"{name}.jsonl", jsonl(rows_out).encode("utf-8"))
        write_atomically(target / "MLTable", MLTABLE.format(jsonl=f"{name}.jsonl").encode("utf-8"))
        written[name] = {"images": len(part), "jsonl": str(target / f"{name}.jsonl"),
                         "mltable": str(target / "MLTable")}
    return {"task": "image_classification_multilabel" if multilabel else "image_classification",
            "datastore": datastore, "prefix": prefix, "images": len(labelled),
            "untagged_left_out": len(images) - len(labelled),
            "tags": dict(sorted(Counter(t for im in labelled for t in im.tags).items())), "written": written}
