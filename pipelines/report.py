"""Evaluation reports: JSON for machines, Markdown for pull requests, and one self-contained HTML page for people.

Input is the plain dict of :meth:`pipelines.metrics.Evaluation.to_dict` (optionally with more keys, see
:func:`write_reports`), so a report can be rebuilt later from the JSON alone. Pictures are drawn with matplotlib's
object API on the Agg canvas (no pyplot, no global backend switch, safe in threads and without a display), written
as PNGs beside the reports for the Markdown, and embedded as data URIs in the HTML so that one file can be attached
to a CI run or mailed.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cvops import finite_json

__all__ = ["MAX_CURVE_PLOTS", "figure_html", "figure_png", "write_reports"]

# Drawing costs ~0.1 s a figure; past this many tags the curves stay in the JSON and the page lists the worst tags.
MAX_CURVE_PLOTS = 40
_REQUIRED = ("n_images", "tags", "micro_precision", "micro_recall", "mean_average_precision")
_KNOWN = {*_REQUIRED, "multiclass", "curves", "accuracy", "confusion_matrix", "confusion_labels",
          "confusion_skipped", "extra", "threshold_sweep"}


def _json_default(value: Any) -> Any:
    """numpy scalars/arrays and paths can sneak into an evaluation dict; write them as plain JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to the JSON report; convert it to a plain value first")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.")[:60] or "tag"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def figure_png(fig: Figure, path: Path) -> bytes:
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=100)
    return path.read_bytes()


def _curve_png(tag: Mapping[str, Any], curve: Mapping[str, list[float]], path: Path) -> bytes:
    """One tag's precision-recall curve, with its operating point (precision/recall at its threshold) marked."""
    fig = Figure(figsize=(4.2, 3.4), layout="constrained")
    ax = fig.add_subplot()
    ax.step(curve["recall"], curve["precision"], where="post", color="#1f77b4", label="PR curve")
    ax.plot([tag["recall"]], [tag["precision"]], "o", color="#d62728",
            label=f"threshold {tag['threshold']:.2f}")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
           title=f"{tag['tag']} (AP {tag['average_precision']:.3f}, n={tag['support']})")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return figure_png(fig, path)


def _confusion_png(matrix: list[list[int]], labels: list[str], path: Path) -> bytes:
    k = len(labels)
    side = min(14.0, 2.5 + 0.45 * k)
    fig = Figure(figsize=(side, side * 0.85), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(k), labels, rotation=45, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set(xlabel="predicted tag", ylabel="true tag", title="Confusion matrix (argmax)")
    if k <= 25:
        peak = max((max(row) for row in matrix), default=0) or 1
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                        color="white" if count > peak / 2 else "black")
    return figure_png(fig, path)


def _check(evaluation: Mapping[str, Any]) -> None:
    if not isinstance(evaluation, Mapping):
        raise ValueError("the evaluation must be a dict (Evaluation.to_dict()), got " + type(evaluation).__name__)
    missing = [key for key in _REQUIRED if key not in evaluation]
    if missing:
        raise ValueError(f"the evaluation dict lacks {missing}; build it with pipelines.metrics.evaluate_scores().to_dict()")


def _summary_rows(ev: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = [("images", _fmt(ev["n_images"])), ("mAP", _fmt(ev["mean_average_precision"])),
            ("micro precision", _fmt(ev["micro_precision"])), ("micro recall", _fmt(ev["micro_recall"]))]
    if ev.get("accuracy") is not None:
        rows.append(("accuracy (argmax)", _fmt(ev["accuracy"])))
    if ev.get("confusion_skipped"):
        rows.append(("images without a tag (left out of the confusion matrix)", _fmt(ev["confusion_skipped"])))
    details = {k: v for k, v in ev.items() if k not in _KNOWN and isinstance(v, str | int | float | bool)}
    details.update({k: v for k, v in (ev.get("extra") or {}).items() if isinstance(v, str | int | float | bool)})
    rows.extend((str(k), _fmt(v)) for k, v in details.items())
    return rows


_TAG_COLUMNS = ("tag", "threshold", "precision", "recall", "average_precision", "support", "predicted")
_SWEEP_COLUMNS = ("tag", "recommended_threshold", "precision", "recall", "met", "reason")


def _sweep_rows(ev: Mapping[str, Any]) -> list[list[str]]:
    sweep = ev.get("threshold_sweep") or {}
    return [[tag] + [_fmt(entry.get(c)) for c in _SWEEP_COLUMNS[1:]] for tag, entry in sweep.items()]


def _markdown(ev: Mapping[str, Any], title: str, pictures: dict[str, str], skipped: int) -> str:
    def table(header: list[str], rows: list[list[str]]) -> list[str]:
        esc = [[cell.replace("|", "\\|") for cell in row] for row in [header, *rows]]
        return ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(header),
                *("| " + " | ".join(row) + " |" for row in esc[1:]), ""]

    lines = [f"# {title}", ""]
    lines += table(["measure", "value"], [list(r) for r in _summary_rows(ev)])
    lines += ["## Per tag", ""]
    lines += table(list(_TAG_COLUMNS), [[_fmt(t.get(c)) for c in _TAG_COLUMNS] for t in ev["tags"]])
    if ev.get("threshold_sweep"):
        lines += ["## Recommended thresholds", ""]
        lines += table(list(_SWEEP_COLUMNS), _sweep_rows(ev))
    if ev.get("confusion_matrix") is not None:
        labels = ev["confusion_labels"]
        lines += ["## Confusion matrix (rows: true tag, columns: predicted tag)", ""]
        lines += table(["true \\ predicted", *labels],
                       [[labels[i], *map(str, row)] for i, row in enumerate(ev["confusion_matrix"])])
    if pictures:
        lines += ["## Pictures", ""]
        lines += [f"![{name}]({file})" for name, file in pictures.items()]
        lines.append("")
    if skipped:
        lines += [f"{skipped} more tag(s) have curves in the JSON report only.", ""]
    return "\n".join(lines)


def _html(ev: Mapping[str, Any], title: str, images: dict[str, tuple[str, bytes]], skipped: int) -> str:
    e = html.escape

    def table(header: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{e(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
        "td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:.5em}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        table(["measure", "value"], [list(r) for r in _summary_rows(ev)]),
        "<h2>Per tag</h2>",
        table(list(_TAG_COLUMNS), [[_fmt(t.get(c)) for c in _TAG_COLUMNS] for t in ev["tags"]]),
    ]
    if ev.get("threshold_sweep"):
        parts += ["<h2>Recommended thresholds</h2>", table(list(_SWEEP_COLUMNS), _sweep_rows(ev))]
    if "confusion" in images:
        file, data = images["confusion"]
        parts += ["<h2>Confusion matrix</h2>", figure_html(file, data, "confusion matrix")]
    curves = {k: v for k, v in images.items() if k != "confusion"}
    if curves:
        parts.append("<h2>Precision-recall curves</h2>")
        parts += [figure_html(file, data, f"precision-recall curve of {tag}") for tag, (file, data) in curves.items()]
    if skipped:
        parts.append(f"<p>{skipped} more tag(s) have curves in the JSON report only.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def figure_html(file: str, data: bytes, alt: str) -> str:
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return (f'<figure><img src="{uri}" alt="{html.escape(alt)}" data-file="{html.escape(file)}">'
            f"<figcaption>{html.escape(alt)}</figcaption></figure>")


def write_reports(evaluation: dict, out_dir: Path, *, title: str) -> dict[str, Path]:
    """Write ``evaluation.json``, ``evaluation.md`` and ``evaluation.html`` (plus PNGs) into ``out_dir``.

    ``evaluation`` is ``Evaluation.to_dict()``; it may also carry ``threshold_sweep`` (the dict of
    :func:`pipelines.metrics.threshold_sweep`, shown as recommended thresholds) and any scalar fields (project,
    iteration, ...) which are listed in the summary. PR curves are drawn for at most :data:`MAX_CURVE_PLOTS` tags,
    those with the lowest AP first (the ones worth looking at). Returns the paths by kind: json, markdown, html,
    and one per picture (``confusion``, ``pr:<tag>``).
    """
    _check(evaluation)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    json_path = out_dir / "evaluation.json"
    json_path.write_text(finite_json.dumps(evaluation, indent=2, default=_json_default) + "\n",
                         encoding="utf-8")
    paths["json"] = json_path

    images: dict[str, tuple[str, bytes]] = {}
    if evaluation.get("confusion_matrix") is not None:
        file = "confusion_matrix.png"
        images["confusion"] = (file, _confusion_png(evaluation["confusion_matrix"],
                                                    list(evaluation["confusion_labels"]), out_dir / file))
        paths["confusion"] = out_dir / file
    curves = evaluation.get("curves") or {}
    drawable = [t for t in evaluation["tags"] if t["tag"] in curves]
    drawable.sort(key=lambda t: (t["average_precision"], t["tag"]))
    for i, tag in enumerate(drawable[:MAX_CURVE_PLOTS]):
        file = f"pr_{i:02d}_{_slug(tag['tag'])}.png"
        images[tag["tag"]] = (file, _curve_png(tag, curves[tag["tag"]], out_dir / file))
        paths[f"pr:{tag['tag']}"] = out_dir / file
    skipped = max(0, len(drawable) - MAX_CURVE_PLOTS)

    md_path = out_dir / "evaluation.md"
    pictures = {("confusion matrix" if k == "confusion" else f"PR curve: {k}"): f for k, (f, _) in images.items()}
    md_path.write_text(_markdown(evaluation, title, pictures, skipped), encoding="utf-8")
    paths["markdown"] = md_path

    html_path = out_dir / "evaluation.html"
    html_path.write_text(_html(evaluation, title, images, skipped), encoding="utf-8")
    paths["html"] = html_path
    return paths
