"""`cvops monitor`'s reports: JSON for alerts and CI, Markdown for a pull request or an issue, and one self-contained
HTML page for people, with the same pictures (matplotlib's object API on Agg, as :mod:`pipelines.report` draws).

What the page shows, in the order a person asks: which rule was crossed, where (the slice table marks the slices that
moved), how each measure went over time per slice, and how the top scores of a moved slice compare with the
baseline's. Every string from the data (slice names are blob prefixes and EXIF text, anyone's to choose) is escaped
and shown through :func:`functions.naming.printable`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from cvops import finite_json
from functions.naming import printable
from pipelines.monitor import ALL, FEATURES
from pipelines.report import figure_html, figure_png

__all__ = ["MAX_SERIES", "write_monitor_reports"]

MAX_SERIES = 8
"""Slices drawn in a time series: the flagged ones first, then the largest; the rest are in the table and JSON."""
_SERIES = (("images", "images per period"), ("review_share", "share sent to review"),
           ("mean_top_score", "mean top score"), ("agreement", "review agreement"))


def _drawn_slices(result: Mapping[str, Any]) -> list[str]:
    flagged = [f["slice"] for f in result["findings"]]
    sizes: dict[str, int] = {}
    for period in result["periods"]:
        for row in period["slices"]:
            sizes[row["slice"]] = sizes.get(row["slice"], 0) + row["images"]
    ordered = list(dict.fromkeys([ALL, *flagged, *sorted(sizes, key=lambda s: -sizes[s])]))
    return [s for s in ordered if s in sizes][:MAX_SERIES]


def _series_png(result: Mapping[str, Any], key: str, label: str, path: Path) -> bytes:
    fig = Figure(figsize=(7.5, 3.0), layout="constrained")
    ax = fig.add_subplot()
    periods = [p["period"] for p in result["periods"]]
    for name in _drawn_slices(result):
        values = []
        for period in result["periods"]:
            row = next((r for r in period["slices"] if r["slice"] == name), None)
            values.append(row.get(key) if row else None)
        xs = [p for p, v in zip(periods, values, strict=True) if v is not None]
        ys = [v for v in values if v is not None]
        if ys:
            ax.plot(xs, ys, marker="o", linewidth=2.2 if name == ALL else 1.2,
                    label="all images" if name == ALL else printable(name)[:40])
    ax.set_title(label)
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    ax.legend(fontsize=7, loc="best")
    return figure_png(fig, path)


def _histogram_png(feature: str, base: list[int], now: list[int], title: str, path: Path) -> bytes:
    spec = next(f for f in FEATURES if f.name == feature)
    fig = Figure(figsize=(4.2, 3.0), layout="constrained")
    ax = fig.add_subplot()
    width = (spec.high - spec.low) / len(now)
    edges = [spec.low + i * width for i in range(len(now))]
    for counts, label in ((base, "baseline"), (now, "now")):
        total = sum(counts) or 1
        ax.bar(edges, [c / total for c in counts], width=width, align="edge", alpha=0.5, label=label)
    ax.set_xlim(spec.low, spec.high)
    ax.set_xlabel(f"log2 {feature}" if spec.log2 else feature)
    ax.set_ylabel("share of images")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return figure_png(fig, path)


def _pictured(result: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(period, feature, slice row) to draw against the baseline: each drift finding's feature, the top scores of
    other flagged slices, else the top scores of the last period's images."""
    rows = {(p["period"], r["slice"]): r for p in result["periods"] for r in p["slices"]}
    out: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    for finding in result["findings"]:
        feature = finding.get("feature", "top_score")
        out.setdefault((finding["period"], finding["slice"], feature), rows[(finding["period"], finding["slice"])])
    if not out and result["periods"]:
        last = result["periods"][-1]["period"]
        out[(last, ALL, "top_score")] = rows[(last, ALL)]
    return [(period, feature, row) for (period, _, feature), row in out.items()][:MAX_SERIES]


def _table_rows(result: Mapping[str, Any]) -> list[tuple[bool, list[str]]]:
    flagged = {(f["period"], f["slice"]) for f in result["findings"]}
    rows = []
    for period in result["periods"]:
        for row in period["slices"]:
            worst = max((d["psi"] for d in row["drift"].values() if d.get("psi") is not None), default=None)
            rows.append(((period["period"], row["slice"]) in flagged, [
                period["period"], "all images" if row["slice"] == ALL else printable(row["slice"]), str(row["images"]),
                _pct(row["review_share"]), _num(row["mean_top_score"]), str(row["reviews"]), _pct(row["agreement"]),
                _num(worst)]))
    return rows


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


_COLUMNS = ["period", "slice", "images", "review share", "mean top score", "reviews", "agreement", "worst PSI"]


def _markdown(result: Mapping[str, Any], pictures: list[tuple[str, str]]) -> str:
    lines = [f"# cvops monitor: {'rules crossed' if result['findings'] else 'no rule crossed'}", "",
             f"Window {result['window']['since']} to {result['window']['until']}, per {result['every']}, by "
             f"{result['by']}; baseline {result['baseline']['since']} to {result['baseline']['until']} "
             f"({result['baseline']['images']} images). Drift test: {result['drift_test']}.", "", "Rules:", ""]
    lines += [f"- {r}" for r in result["rules_text"]]
    lines += ["", "## Findings", ""]
    lines += [f"- **{f['rule']}**: {printable(f['message'])}" for f in result["findings"]] or ["- none"]
    lines += ["", "## Slices", "", "| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for flagged, cells in _table_rows(result):
        shown = [c.replace("|", "\\|") for c in cells]
        if flagged:
            shown[1] = f"**{shown[1]}** (flagged)"
        lines.append("| " + " | ".join(shown) + " |")
    lines += [""] + [f"![{alt}]({file})" for alt, file in pictures]
    return "\n".join(lines) + "\n"


def _html(result: Mapping[str, Any], images: list[tuple[str, str, bytes]]) -> str:
    e = html.escape
    title = "cvops monitor: " + ("rules crossed" if result["findings"] else "no rule crossed")
    head = "".join(f"<th>{e(c)}</th>" for c in _COLUMNS)
    body = "".join(
        f'<tr{" class=flagged" if flagged else ""}>' + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>"
        for flagged, cells in _table_rows(result))
    findings = "".join(f"<li><strong>{e(f['rule'])}</strong>: {e(printable(f['message']))}</li>"
                       for f in result["findings"]) or "<li>none</li>"
    rules = "".join(f"<li>{e(r)}</li>" for r in result["rules_text"])
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
        "td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}tr.flagged td{background:#fde2e1;font-weight:600}"
        "figure{display:inline-block;margin:.5em}img{max-width:100%}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>Window {e(result['window']['since'])} to {e(result['window']['until'])}, per {e(result['every'])}, by "
        f"{e(result['by'])}; baseline {e(result['baseline']['since'])} to {e(result['baseline']['until'])} "
        f"({result['baseline']['images']} images). Drift test: {e(result['drift_test'])}.</p>",
        f"<h2>Findings</h2><ul id=findings>{findings}</ul>", f"<h2>Rules</h2><ul>{rules}</ul>",
        f"<h2>Slices</h2><table id=slices><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
        "<h2>Over time and against the baseline</h2>",
    ]
    parts += [figure_html(file, data, alt) for alt, file, data in images]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_monitor_reports(result: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write ``monitor.json``, ``monitor.md``, ``monitor.html`` and their PNGs into ``out_dir``; paths by kind."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {"json": out_dir / "monitor.json"}
    paths["json"].write_text(finite_json.dumps(result, indent=2) + "\n", encoding="utf-8")
    images: list[tuple[str, str, bytes]] = []
    if result["periods"]:
        for key, label in _SERIES:
            if all(row.get(key) is None for p in result["periods"] for row in p["slices"]):
                continue  # e.g. no reviews in the window: no agreement to draw
            file = f"series_{key}.png"
            images.append((label, file, _series_png(result, key, label, out_dir / file)))
    for i, (period, feature, row) in enumerate(_pictured(result)):
        base = (row.get("baseline_histograms") or {}).get(feature) or []
        now = row["histograms"][feature]
        if sum(base) and sum(now):
            name = "all images" if row["slice"] == ALL else printable(row["slice"])
            alt = f"{feature} of {name} in {period} against the baseline"
            file = f"histogram_{i:02d}.png"
            images.append((alt, file, _histogram_png(feature, base, now, alt, out_dir / file)))
    for _, file, _ in images:
        paths[file] = out_dir / file
    paths["markdown"] = out_dir / "monitor.md"
    paths["markdown"].write_text(_markdown(result, [(alt, file) for alt, file, _ in images]), encoding="utf-8")
    paths["html"] = out_dir / "monitor.html"
    paths["html"].write_text(_html(result, images), encoding="utf-8")
    return paths
