"""`cvops monitor` end to end on Azurite: records written where and as the Function App writes them (date partitions
of the results container), review decisions made through the review code, the command's exit code, findings and
reports."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from devkit.records import Slice, generate_records
from functions import naming
from functions.store import BlobStore
from pipelines.cli import cli
from pipelines.review import decisions

pytestmark = pytest.mark.azurite

START = datetime(2026, 11, 2, tzinfo=UTC)


def _write_records(review_world, records) -> int:
    store = BlobStore(review_world.blob_service)
    results = review_world.config.results

    def put(record):
        blob = record["blob"]
        name = naming.result_blob_name(results, f"{blob['container']}/{blob['name']}", blob["etag"],
                                       datetime.fromisoformat(blob["last_modified"]))
        return store.create_record(results.container, name, record)

    with ThreadPoolExecutor(8) as pool:  # within the storage client's pool of 10 connections
        return sum(1 for _ in pool.map(put, records))


@pytest.fixture
def month(review_world):
    """Five weeks of three cameras, 20 images a day each; from the fourth week camera 2's images are darker."""
    slices = [Slice("site-a/cam-1", per_day=20), Slice("site-b/cam-2", per_day=20, changes={21: {"luminance": 70.0}}),
              Slice("site-c/cam-3", per_day=20)]
    written = _write_records(review_world, generate_records(slices, start=START, days=35))
    assert written == 3 * 20 * 35
    return review_world


def test_monitor_flags_the_darkening_camera_by_name_exits_1_and_writes_its_reports(month, azurite, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("min_images: 100\n", encoding="utf-8")
    result = CliRunner().invoke(cli, [
        "monitor", "--json", "--since", "2026-11-16", "--until", "2026-12-06", "--every", "week",
        "--baseline", "2026-11-02..2026-11-15", "--rules", str(rules), "--report", str(tmp_path / "report")],
        env={**month.env(), "CVOPS_STORAGE": azurite.connection_string}, catch_exceptions=False)
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["records"] == 3 * 20 * 21 and data["baseline"]["images"] == 3 * 20 * 14
    drifted = {(f["slice"], f["feature"]) for f in data["findings"] if f["rule"] == "drift" and f["slice"] != "*"}
    assert drifted == {("site-b/", "luminance_mean")}
    assert min(f["period"] for f in data["findings"]) == "2026-11-23"  # the first week with the new camera
    assert "drifted in slice site-b/" in result.stderr or "drifted in slice site-b/" in result.stdout
    for kind in ("json", "markdown", "html"):
        assert (tmp_path / "report").joinpath(data["reports"][kind].rsplit("/", 1)[-1]).exists()
    markdown = (tmp_path / "report" / "monitor.md").read_text(encoding="utf-8")
    assert "**site-b/** (flagged)" in markdown and "luminance_mean of site-b/" in markdown


def test_a_stable_window_exits_0_and_says_no_rule_was_crossed(month, azurite):
    result = CliRunner().invoke(cli, ["monitor", "--since", "2026-11-09", "--until", "2026-11-22", "--every", "week",
                                      "--baseline", "2026-11-02..2026-11-08"],
                                env={**month.env(), "CVOPS_STORAGE": azurite.connection_string,
                                     "COLUMNS": "200"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "no rule crossed" in result.output and "site-b/" in result.output


def test_review_agreement_from_real_decisions_is_flagged(review_world, azurite):
    arrived = datetime.now(UTC) - timedelta(hours=1)
    added = [review_world.add(f"shop/{i:02d}.jpg", {"beach": 0.7, "city": 0.3}, arrived=arrived) for i in range(32)]
    for i, record in enumerate(added):
        agree = i % 2 == 0  # people keep the model's tag for half of them
        decisions.decide(review_world.blob_service, review_world.config, record["key"], reviewer="alice",
                         tags=["beach" if agree else "city"], reject=False)
    result = CliRunner().invoke(cli, ["monitor", "--json", "--since", (arrived - timedelta(days=1)).isoformat()],
                                env={**review_world.env(), "CVOPS_STORAGE": azurite.connection_string},
                                catch_exceptions=False)
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    agreement = [f for f in data["findings"] if f["rule"] == "agreement"]
    assert {f["slice"] for f in agreement} == {"*", "shop/"}
    assert all(f["reviews"] == 32 and f["value"] == 0.5 for f in agreement)


def test_a_rules_file_with_an_unknown_rule_is_exit_2_naming_it(review_world, azurite, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("psi_abov: 0.3\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["monitor", "--rules", str(rules)],
                                env={**review_world.env(), "CVOPS_STORAGE": azurite.connection_string})
    assert result.exit_code == 2
    assert "unknown rule 'psi_abov'" in result.stderr
