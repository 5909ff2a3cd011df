"""Reviewed images back into training: a manifest ``cvops images upload`` reads (:func:`pipelines.sources.parse_manifest`).

Only what a person decided, with the person's tags: each entry comes from a decision record (never from the app's
result record, whose tags are the model's), and its path is the copy the decision made in ``accepted/<tag>/``,
as ``az://container/name``. That path is also the upload's source key, so exporting overlapping periods and
uploading twice sends each image once.

Why rejected images are left out (and counted): the manifest format gives every image at least one tag, and a
rejection says "none of these, or not usable" (off-topic, offensive, unreadable), which is not a label to train on.
A project that wants negatives tags them itself.

JSON Lines by default (a tag may contain ``,``, ``;`` or ``|``, which the CSV form cannot carry); ``.csv`` when the
output file's name says so and every tag fits it. Building the manifest is pure (:func:`manifest_rows`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cvops.errors import ConfigurationError
from pipelines.sources import TAG_SEPARATORS
from pipelines.spec import SOURCE_SCHEME

__all__ = ["Manifest", "manifest_rows", "render"]


@dataclass(frozen=True)
class Manifest:
    """The rows (path, tags, and who decided when), and what was left out."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    skipped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"images": len(self.rows), "rejected_left_out": self.rejected, "skipped": self.skipped}


def manifest_rows(decisions: Iterable[Mapping[str, Any]]) -> Manifest:
    """One row per accepted decision: its first copy (``az://accepted/<tag>/<name>``; a multilabel image has one
    copy per tag, the same bytes) and all its human tags. Decisions without a copy or tags are skipped (counted)."""
    rows, rejected, skipped = [], 0, 0
    for decision in decisions:
        if decision.get("decision") == "rejected":
            rejected += 1
            continue
        tags = [t for t in decision.get("tags") or [] if isinstance(t, str) and t]
        destinations = [d for d in decision.get("destinations") or [] if isinstance(d, str) and "/" in d]
        if decision.get("decision") != "accepted" or not tags or not destinations:
            skipped += 1
            continue
        rows.append({"path": f"{SOURCE_SCHEME}{destinations[0]}", "tags": tags,
                     "reviewer": decision.get("reviewer"), "decided_at": decision.get("decided_at"),
                     "key": decision.get("key")})
    return Manifest(rows, rejected, skipped)


def render(manifest: Manifest, *, csv_format: bool = False) -> str:
    """The manifest's text: JSON Lines, or CSV (path,tags with ``;`` between tags). CSV refuses a tag that holds a
    separator (ConfigurationError): it would come back as two tags."""
    if not csv_format:
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in manifest.rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "tags"])
    for row in manifest.rows:
        for tag in row["tags"]:
            if any(sep in tag for sep in TAG_SEPARATORS) or tag != tag.strip():
                raise ConfigurationError(f"tag {tag!r} cannot be written in a CSV manifest (it holds a separator or "
                                         "spaces at an end)", setting="--out", hint="write a .jsonl manifest")
        writer.writerow([row["path"], TAG_SEPARATORS[0].join(row["tags"])])
    return out.getvalue()
