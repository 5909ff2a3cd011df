"""pipelines.report: the three reports are written, agree with the evaluation, and their pictures are real PNGs."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines import report
from pipelines.metrics import evaluate_scores, threshold_sweep
from pipelines.report import write_reports

TAGS = ["beach", "forest", "mountain", "city & <town>"]


def scored(multiclass: bool, seed: int = 0, n: int = 120) -> dict:
    rng = np.random.default_rng(seed)
    if multiclass:
        y = np.eye(len(TAGS), dtype=int)[rng.integers(0, len(TAGS), n)]
    else:
        y = (rng.random((n, len(TAGS))) < 0.4).astype(int)
    s = np.clip(y * 0.45 + rng.random(y.shape) * 0.6, 0, 1)
    ev = evaluate_scores(y, s, TAGS, 0.5, multiclass).to_dict()
    sweep = threshold_sweep(y, s, target_precision=0.9, tag_names=TAGS)
    ev["threshold_sweep"] = {t: {k: v for k, v in d.items() if k != "sweep"} for t, d in sweep.items()}
    ev["iteration"] = "Iteration 3"
    return ev


class Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def is_png(data: bytes) -> tuple[int, int]:
    with Image.open(__import__("io").BytesIO(data)) as image:
        assert image.format == "PNG"
        image.load()
        return image.size


def test_multiclass_report_has_json_markdown_html_and_png_pictures(tmp_path: Path) -> None:
    ev = scored(multiclass=True)
    paths = write_reports(ev, tmp_path / "out", title="Scenes: Iteration 3")
    assert {"json", "markdown", "html", "confusion"} <= set(paths)
    assert {k for k in paths if k.startswith("pr:")} == {f"pr:{t}" for t in TAGS}

    assert json.loads(paths["json"].read_text()) == json.loads(json.dumps(ev))

    for key, path in paths.items():
        if key == "confusion" or key.startswith("pr:"):
            width, height = is_png(path.read_bytes())
            assert width > 200 and height > 200

    markdown = paths["markdown"].read_text()
    assert markdown.startswith("# Scenes: Iteration 3")
    assert f"| mAP | {ev['mean_average_precision']:.3f} |" in markdown
    assert "| iteration | Iteration 3 |" in markdown
    for key, path in paths.items():
        if key == "confusion" or key.startswith("pr:"):
            assert f"]({path.name})" in markdown  # Markdown links the PNGs beside it

    page = paths["html"].read_text()
    parser = Images()
    parser.feed(page)
    assert len(parser.sources) == len(TAGS) + 1
    for source in parser.sources:  # self-contained: every picture is embedded and decodes as a PNG
        assert source.startswith("data:image/png;base64,")
        is_png(base64.b64decode(source.split(",", 1)[1]))
    assert "city &amp; &lt;town&gt;" in page and "<town>" not in page


def test_multilabel_report_has_no_confusion_matrix(tmp_path: Path) -> None:
    paths = write_reports(scored(multiclass=False), tmp_path, title="Multilabel")
    assert "confusion" not in paths
    assert "Confusion" not in paths["markdown"].read_text()
    assert "Recommended thresholds" in paths["html"].read_text()


def test_per_tag_table_matches_the_evaluation(tmp_path: Path) -> None:
    ev = scored(multiclass=False, seed=3)
    markdown = write_reports(ev, tmp_path, title="t")["markdown"].read_text()
    for tag in ev["tags"]:
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {tag['tag']} | 0.500"))
        assert f"| {tag['precision']:.3f} | {tag['recall']:.3f} | {tag['average_precision']:.3f} |" in row


def test_curves_are_capped_and_the_rest_mentioned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "MAX_CURVE_PLOTS", 2)
    ev = scored(multiclass=False, seed=1)
    paths = write_reports(ev, tmp_path, title="t")
    drawn = sorted(k[3:] for k in paths if k.startswith("pr:"))
    worst_two = sorted(t["tag"] for t in sorted(ev["tags"], key=lambda t: t["average_precision"])[:2])
    assert drawn == worst_two
    assert "2 more tag(s)" in paths["html"].read_text()


def test_report_can_be_rebuilt_from_its_own_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "MAX_CURVE_PLOTS", 1)  # pictures are tested above; keep this one quick
    first = write_reports(scored(multiclass=True), tmp_path / "a", title="t")
    again = write_reports(json.loads(first["json"].read_text()), tmp_path / "b", title="t")
    assert first["markdown"].read_text() == again["markdown"].read_text()


def test_numpy_values_are_written_as_plain_json(tmp_path: Path) -> None:
    ev = scored(multiclass=False)
    ev["n_images"] = np.int64(ev["n_images"])
    ev["extra"] = {"thresholds": np.array([0.5, 0.6])}
    del ev["curves"]  # no pictures needed here
    data = json.loads(write_reports(ev, tmp_path, title="t")["json"].read_text())
    assert data["extra"]["thresholds"] == [0.5, 0.6]


def test_an_incomplete_evaluation_is_refused_naming_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("['mean_average_precision']")):
        write_reports({"n_images": 1, "tags": [], "micro_precision": 0, "micro_recall": 0}, tmp_path, title="t")
