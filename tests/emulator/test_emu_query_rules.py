"""The pure query rules of the local service, without a server: the image metadata `$filter` (run on a real SQLite
table) and QueryPredictions' token."""

from __future__ import annotations

import json
import sqlite3

import pytest

from emulator.exceptions import BadRequest
from emulator.models.metadata_filter import metadata_filter_sql
from emulator.models.prediction_query import parse_prediction_query, within_thresholds

IMAGES = {
    "a": {"camera": "north", "season": "summer"},
    "b": {"camera": "north", "season": "winter"},
    "c": {"camera": "south", "season": "summer", "note": "it's wet"},
    "d": None,
}


def matching(expression: str) -> set[str]:
    """Ids of the images above whose metadata the filter keeps, evaluated by SQLite as the service evaluates it."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE images (id TEXT, metadata TEXT)")
    db.executemany("INSERT INTO images VALUES (?, ?)",
                   [(k, json.dumps(v) if v else None) for k, v in IMAGES.items()])
    sql, params = metadata_filter_sql(expression)
    return {row[0] for row in db.execute(f"SELECT i.id FROM images i WHERE {sql}", params)}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("camera eq 'north'", {"a", "b"}),
        ("camera ne 'north'", {"c", "d"}),  # an image without the key is ne every value
        ("camera eq 'north' and season eq 'summer' or camera eq 'south'", {"a", "c"}),  # and binds tighter
        ("camera eq 'north' and (season eq 'summer' or season eq 'autumn')", {"a"}),
        ("metadata=note eq 'it''s wet'", {"c"}),  # the spec example's prefix, and a doubled quote
        ("CAMERA EQ 'north'", set()),  # keys are case-sensitive, operators are not
    ],
)
def test_metadata_filter_keeps_the_images_it_names(expression, expected):
    assert matching(expression) == expected


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("", "empty"),
        ("camera eq 'north", "unclosed quote"),
        ("camera is 'north'", "expected eq or ne"),
        ("camera eq north", "quoted value"),
        ("(camera eq 'north'", "not closed"),
        ("camera eq 'north' season eq 'summer'", "join conditions with and / or"),
    ],
)
def test_a_malformed_metadata_filter_says_what_is_wrong(expression, reason):
    with pytest.raises(ValueError, match=reason):
        metadata_filter_sql(expression)


def test_a_prediction_query_gets_defaults_and_times_in_the_stored_format():
    query = parse_prediction_query({"startTime": "2024-05-01T10:00:00+02:00", "continuation": "100"})
    assert query["orderBy"] == "Newest" and query["maxCount"] == 50 and query["skip"] == 100
    assert query["startTime"] == "2024-05-01T08:00:00.000Z" and query["endTime"] is None


@pytest.mark.parametrize(
    ("token", "code", "names"),
    [
        ({"orderBy": "Random"}, "BadRequestPredictionInvalidQueryParameters", "orderBy"),
        ({"maxCount": True}, "BadRequestPredictionInvalidQueryParameters", "maxCount"),
        ({"continuation": "page2"}, "BadRequestPredictionInvalidQueryParameters", "continuation"),
        ({"endTime": "yesterday"}, "BadRequestPredictionInvalidQueryParameters", "endTime"),
        ({"tags": [{"id": "x", "minThreshold": 0.9, "maxThreshold": 0.1}]}, "BadRequestPredictionInvalidQueryParameters",
         "minThreshold"),
        ({"tags": [{"id": "a"}, {"id": "b"}, {"id": "c"}]}, "BadRequestPredictionTagsExceededCount", "at most 2"),
    ],
)
def test_a_bad_prediction_query_is_refused_naming_the_field(token, code, names):
    with pytest.raises(BadRequest, match=names) as caught:
        parse_prediction_query(token)
    assert caught.value.code == code


def test_tag_thresholds_keep_predictions_within_every_range():
    stored = [{"tagId": "beach", "probability": 0.8}, {"tagId": "forest", "probability": 0.2}]
    assert within_thresholds(stored, [("beach", 0.5, 1.0), ("forest", 0.0, 0.3)])
    assert not within_thresholds(stored, [("beach", 0.9, 1.0)])
    assert not within_thresholds(stored, [("city", 0.0, 1.0)])  # a tag the prediction does not have
