"""`cvops monitor`'s HTML report in headless Chromium: every plot renders, nothing goes to the console, the slice table
points at the slice that moved, and a hostile slice name is shown as text (docs/monitor-report.png)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devkit.records import Slice, generate_records
from pipelines.monitor import Aggregate, Rules, summarise
from pipelines.monitor_report import write_monitor_reports

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "monitor-report.png"
START = datetime(2026, 11, 2, tzinfo=UTC)


def _result() -> dict:
    slices = [Slice("site-a/cam-1", per_day=60), Slice("site-b/cam-2", per_day=60, changes={21: {"luminance": 70.0}}),
              Slice("<img src=x onerror=alert(1)>/cam", per_day=60)]
    base, now = Aggregate("week", "prefix"), Aggregate("week", "prefix")
    for record in generate_records(slices, start=START, days=35):
        (base if record["blob"]["last_modified"] < (START + timedelta(days=14)).isoformat() else now).add(record)
    return summarise(now, base, Rules(), window={"since": "2026-11-16", "until": "2026-12-07", "every": "week"},
                     baseline_window={"since": "2026-11-02", "until": "2026-11-16"}, skipped={})


def test_the_monitor_report_renders_every_plot_with_no_console_errors_and_marks_the_moved_slice(browser, tmp_path):
    paths = write_monitor_reports(_result(), tmp_path / "report")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.goto(paths["html"].as_uri())
    page.wait_for_load_state("load")
    sizes = page.evaluate("() => [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(sizes) >= 4 and all(done and w > 300 and h > 150 for done, w, h in sizes), sizes
    flagged = page.locator("tr.flagged td:nth-child(2)").all_inner_texts()
    assert flagged and set(flagged) <= {"site-b/", "all images"} and "site-b/" in flagged
    assert page.locator("#findings li").count() >= 1
    assert "site-b/" in page.locator("#findings").inner_text()
    assert page.locator("#slices").get_by_text("<img src=x onerror=alert(1)>/").count() >= 1  # shown, not run
    assert problems == []
    shot = tmp_path / "monitor-report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("CVOPS_UPDATE_SCREENSHOT"):
        from PIL import Image

        with Image.open(shot) as picture:
            picture.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(SCREENSHOT, optimize=True)
    context.close()
