"""Review records are data, never instructions: tags with Rich markup or terminal escapes print as text, CSV cells a
spreadsheet would run are neutralised and read back as the same tags, the manifest carries any blob name and tag
exactly, and one malformed record is named and left out (export, stats) or shown as an item nobody can decide on,
while everything else keeps working."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from functions import naming
from pipelines.cli import cli
from pipelines.review import decisions, manifest, stats
from pipelines.review.items import item_from_record
from pipelines.sources import parse_manifest

INVISIBLE = [*map(chr, range(0x200B, 0x2010)), *map(chr, range(0x2060, 0x2065)), "\ufeff",
             *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda c: f"U+{ord(c):04X}")
def test_printable_shows_every_zero_width_and_bidi_character_as_an_escape(char):
    shown = naming.printable(f"beach{char}")
    assert shown != "beach" and f"\\u{ord(char):04x}" in shown and char not in shown


def _decision(key: str, tags, *, decision: str = "accepted", top: str = "beach", name: str = "a.jpg") -> dict:
    return {"schema": decisions.DECISION_SCHEMA, "key": key, "reviewer": "ann",
            "decided_at": "2026-11-30T04:00:00+00:00", "decision": decision, "tags": tags,
            "classification_type": "multiclass",
            "model": {"top_tag": top, "top_score": 0.7, "threshold": 0.8, "suggested": [],
                      "scores": [[top, 0.7]], "reason_codes": []},
            "agreed": True, "destinations": [f"accepted/{top}/{name}"], "placement": []}


# --- CSV and the manifest -----------------------------------------------------------------------------------------

FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd", "'quoted"]


def test_csv_cells_a_spreadsheet_would_run_are_neutralised_and_upload_reads_back_the_same_tags():
    rows = [{"path": f"az://accepted/t/{i}.jpg", "tags": [tag, "beach"], "reviewer": "ann", "decided_at": None,
             "key": str(i)} for i, tag in enumerate(FORMULAS) if tag == tag.strip()]
    text = manifest.render(manifest.Manifest(rows), csv_format=True)
    for line in text.splitlines()[1:]:
        cell = line.split(",", 1)[1].lstrip('"')
        assert cell[:1] not in "=+-@\t\r", line  # no cell begins with what a spreadsheet evaluates
    read = parse_manifest(text, name="reviewed.csv")
    assert [(e.path, list(e.tags)) for e in read] == [(r["path"], r["tags"]) for r in rows]


@settings(max_examples=300, deadline=None)
@given(names=st.lists(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
                      min_size=1, max_size=5, unique=True),
       tags=st.lists(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30),
                     min_size=1, max_size=4, unique=True))
def test_a_json_lines_manifest_round_trips_any_blob_name_and_tag_exactly(names, tags):
    rows = [{"path": f"az://accepted/{name}", "tags": tags, "reviewer": "ann", "decided_at": None, "key": str(i)}
            for i, name in enumerate(names)]
    read = parse_manifest(manifest.render(manifest.Manifest(rows)), name="reviewed.jsonl")
    assert [(e.path, list(e.tags)) for e in read] == [(r["path"], r["tags"]) for r in rows]


_CSV_TAG = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=";|"), min_size=1,
                   max_size=20).filter(lambda t: t == t.strip())


@settings(max_examples=300, deadline=None)
@given(name=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(
           lambda n: n == n.strip()),
       tags=st.lists(_CSV_TAG, min_size=1, max_size=4, unique=True))
def test_a_csv_manifest_round_trips_every_tag_it_accepts_whatever_it_begins_with(name, tags):
    rows = [{"path": f"az://accepted/{name}", "tags": tags, "reviewer": "ann", "decided_at": None, "key": "k"}]
    text = manifest.render(manifest.Manifest(rows), csv_format=True)
    read = parse_manifest(text, name="reviewed.csv")
    assert [(e.path, list(e.tags)) for e in read] == [(rows[0]["path"], tags)]


def test_a_trailing_space_in_a_blob_name_and_spaces_around_a_tag_survive_the_manifest():
    rows = [{"path": "az://accepted/beach/IMG 1.jpg ", "tags": [" beach ", "city"], "reviewer": "ann",
             "decided_at": None, "key": "k"}]
    read = parse_manifest(manifest.render(manifest.Manifest(rows)), name="reviewed.jsonl")
    assert (read[0].path, read[0].tags) == ("az://accepted/beach/IMG 1.jpg ", (" beach ", "city"))


@pytest.mark.parametrize(("tags", "why"), [("beach", "not a list"), ([["beach"]], "not a list"),
                                           ([{"t": 1}], "not a list"), ([""], "not a list")])
def test_a_decision_whose_tags_are_a_string_or_nested_is_named_and_never_split(tags, why):
    good = _decision("a" * 32, ["city"], name="good.jpg")
    bad = _decision("b" * 32, tags)
    built = manifest.manifest_rows([good, bad])
    assert [r["tags"] for r in built.rows] == [["city"]]  # never b,e,a,c,h
    assert built.malformed and built.malformed[0][0] == "b" * 32 and why in built.malformed[0][1]
    report = stats.review_stats([good, bad], min_support=1)
    assert report["decisions"] == 1 and report["malformed"][0]["record"] == "b" * 32


# --- review records with a malformed field ------------------------------------------------------------------------

def _record(**fields) -> dict:
    record = {"key": "c" * 32, "outcome": "review", "destinations": ["review/a.jpg"],
              "blob": {"name": "a.jpg", "container": "incoming", "etag": "\"1\"",
                       "last_modified": "2026-11-30T03:00:00+00:00"},
              "predictions": [{"tag": "beach", "probability": 0.7}, {"tag": "city", "probability": 0.3}],
              "reasons": [{"code": "in_review_band", "message": "beach 0.70 is in the review band"}],
              "tags": [], "policy": {"classification_type": "multiclass"}}
    return {**record, **fields}


@pytest.mark.parametrize(("fields", "why"), [
    ({"tags": ["mountain"]}, "suggested tag mountain has no score"),
    ({"tags": "beach"}, "suggested tags are not a list"),
    ({"predictions": {"beach": 0.7}}, "predictions are a dict"),
    ({"reasons": "in band"}, "reasons are a str"),
])
def test_a_review_record_with_a_malformed_field_is_an_item_that_says_why_and_cannot_be_decided(fields, why):
    item = item_from_record(_record(**fields), copy="review/a.jpg", etag="\"e\"", content_type="image/jpeg")
    assert item is not None and why in item.problem
    with pytest.raises(ValueError, match="cannot be reviewed"):
        decisions.check_choice(item, ["beach"], False)
    fine = item_from_record(_record(), copy="review/a.jpg", etag="\"e\"", content_type="image/jpeg")
    assert fine.problem is None and decisions.check_choice(fine, ["beach"], False) == ("beach",)


# --- the terminal -------------------------------------------------------------------------------------------------

MARKUP_TAGS = ["[/]", "[link=http://evil.example]click[/link]", "red\x1b[31mALERT\x1b[0m", "beach\u200b"]


@pytest.mark.azurite
def test_review_stats_and_export_print_tags_as_text_never_markup_links_or_terminal_escapes(review_world, azurite,
                                                                                          tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    world = review_world
    for i, tag in enumerate(MARKUP_TAGS):
        record = world.add(f"m/{i}.jpg", {tag: 0.7, "plain": 0.3})
        assert decisions.decide(world.blob_service, world.config, record["key"], reviewer="ann", tags=[tag]).applied
    # Two hand-made records: tags as one string, and nested.
    results = world.blob_service.get_container_client(world.containers["results"])
    for key, tags in (("d" * 32, "beach"), ("e" * 32, [["beach"]])):
        results.upload_blob(f"reviews/{key}.json", json.dumps(_decision(key, tags)))
    env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string, "AZURE_STORAGE_ACCOUNT_URL": "",
           "CVOPS_SPEC": "", "CVOPS_PROJECT": "", "CVOPS_TIER": "", "COLUMNS": "400", **world.env()}
    result = CliRunner().invoke(cli, ["review", "stats", "--min-support", "1"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "\x1b" not in out and "\u200b" not in out and "\x1b]8;" not in out  # no escape, no hyperlink, nothing hidden
    for tag in MARKUP_TAGS:
        assert naming.printable(tag) in out, tag
    assert f"decision record reviews/{'d' * 32}.json is malformed" in out and f"reviews/{'e' * 32}.json" in out

    as_json = CliRunner().invoke(cli, ["review", "stats", "--min-support", "1", "--json"], env=env)
    report = json.loads(as_json.stdout)
    assert sorted(t["tag"] for t in report["tags"]) == sorted(MARKUP_TAGS)  # the data itself, exact
    assert report["decisions"] == len(MARKUP_TAGS) and len(report["malformed"]) == 2

    out_file = tmp_path / "reviewed.jsonl"
    result = CliRunner().invoke(cli, ["review", "export", "--since", "2026-01-01", "--out", str(out_file)], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "is malformed" in result.stdout and "\x1b" not in result.stdout
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert sorted(r["tags"][0] for r in rows) == sorted(MARKUP_TAGS)
    assert all(len(r["tags"]) == 1 for r in rows)  # "beach" was not exported as b,e,a,c,h
