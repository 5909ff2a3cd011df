"""Reviewed images back into training: a manifest ``cvops images upload`` reads (:func:`pipelines.sources.parse_manifest`).

Only what a person decided, with the person's tags: each entry comes from a decision record (never from the app's
result record, whose tags are the model's), and its path is the copy the decision made in ``accepted/<tag>/``,
as ``az://container/name``. That path is also the upload's source key, so exporting overlapping periods and
uploading twice sends each image once.

Why rejected images are left out (and counted): the manifest format gives every image at least one tag, and a
rejection says "none of these, or not usable" (off-topic, offensive, unreadable), which is not a label to train on.
A project that wants negatives tags them itself.

JSON Lines by default (a tag may contain ``,``, ``;`` or ``|``, which the CSV form cannot carry); ``.csv`` when the
output file's name says so and every tag fits it. A CSV tags cell that a spreadsheet would run as a formula (``=``,
``+``, ``-``, ``@``, tab, CR first) is written with a leading ``'``, which ``images upload`` removes. Building the
manifest is pure (:func:`manifest_rows`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cvops.errors import ConfigurationError
from functions.naming import printable
from pipelines.review.shape import decision_problem
from pipelines.sources import CSV_FORMULA_STARTS, CSV_QUOTE, TAG_SEPARATORS
from pipelines.spec import SOURCE_SCHEME

__all__ = ["Manifest", "csv_cell", "manifest_rows", "render"]


@dataclass(frozen=True)
class Manifest:
    """The rows (path, tags, and who decided when), and what was left out: rejected images, accepted ones with no
    copy, and malformed decision records as (blob name or key, why)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    skipped: int = 0
    malformed: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"images": len(self.rows), "rejected_left_out": self.rejected, "skipped": self.skipped,
                "malformed": [{"record": name, "why": why} for name, why in self.malformed]}


def manifest_rows(decisions: Iterable[Mapping[str, Any]], *,
                  malformed: Iterable[tuple[str, str]] = ()) -> Manifest:
    """One row per accepted decision: its first copy (``az://accepted/<tag>/<name>``; a multilabel image has one
    copy per tag, the same bytes) and all its human tags, exactly as recorded. A record that is not shaped as a
    decision (:func:`pipelines.review.shape.decision_problem`) is left out and named in ``malformed`` (with those
    the caller already found); it is never split or coerced (``"tags": "beach"`` is not five tags)."""
    rows, rejected, skipped, bad = [], 0, 0, list(malformed)
    for decision in decisions:
        problem = decision_problem(decision)
        if problem is not None:
            key = decision.get("key") if isinstance(decision, Mapping) else None
            bad.append((str(key) if isinstance(key, str) else "a decision record", problem))
            continue
        if decision["decision"] == "rejected":
            rejected += 1
            continue
        destinations = decision["destinations"]
        if not destinations:
            skipped += 1
            continue
        rows.append({"path": f"{SOURCE_SCHEME}{destinations[0]}", "tags": list(decision["tags"]),
                     "reviewer": decision.get("reviewer"), "decided_at": decision.get("decided_at"),
                     "key": decision.get("key")})
    return Manifest(rows, rejected, skipped, bad)


_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _json_line(row: Mapping[str, Any]) -> str:
    """One JSON Lines line, readable (UTF-8, not \\u escapes), with the three characters JSON leaves unescaped that
    some line readers take as a line break escaped anyway: a blob name or tag holding one stays on its line."""
    line = json.dumps(row, ensure_ascii=False)
    for char, escaped in _LINE_BREAKS.items():
        line = line.replace(char, escaped)
    return line + "\n"


def csv_cell(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs as a formula: a cell beginning with ``=``, ``+``, ``-``, ``@``, a
    tab or a carriage return (what Excel, LibreOffice and Sheets evaluate), or with the quote itself, gets a leading
    ``'``. :func:`pipelines.sources.parse_manifest` removes exactly one leading ``'`` from a tags cell, so
    ``images upload`` reads back the same tags (and a spreadsheet shows the cell as text)."""
    return f"{CSV_QUOTE}{text}" if text[:1] in CSV_FORMULA_STARTS + CSV_QUOTE else text


def render(manifest: Manifest, *, csv_format: bool = False) -> str:
    """The manifest's text: JSON Lines, or CSV (path,tags with ``;`` between tags; a tags cell a spreadsheet would
    run gets a leading ``'``, :func:`csv_cell`). CSV refuses a tag that holds a separator or has spaces at an end
    (ConfigurationError): it would come back as another tag. JSON Lines carries every tag and path exactly."""
    if not csv_format:
        return "".join(_json_line(row) for row in manifest.rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    # A lone CR is not quoted by the minimal writer (its line ends in LF), and a reader then stops at it: a row
    # holding one is written with every cell quoted.
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["path", "tags"])
    for row in manifest.rows:
        for tag in row["tags"]:
            if any(sep in tag for sep in TAG_SEPARATORS) or tag != tag.strip() or tag != tag.strip("\r\n"):
                raise ConfigurationError(f"tag {printable(tag)} cannot be written in a CSV manifest (it holds a "
                                         "separator or spaces at an end)", setting="--out", hint="write a .jsonl manifest")
        if row["path"] != row["path"].strip() or row["path"][:1] in CSV_FORMULA_STARTS + CSV_QUOTE:
            raise ConfigurationError(f"path {printable(row['path'])} cannot be written in a CSV manifest (spaces at "
                                     "an end)", setting="--out", hint="write a .jsonl manifest")
        cells = [row["path"], csv_cell(TAG_SEPARATORS[0].join(row["tags"]))]
        (quoted if any("\r" in cell for cell in cells) else writer).writerow(cells)
    return out.getvalue()
