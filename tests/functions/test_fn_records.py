"""Pure pieces around the write path: redaction, naming, record building, settings example."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from cvops.errors import ConfigurationError
from cvops.redaction import RedactingFilter, redact, strip_query
from functions import settings
from functions.naming import Location, copy_name, record_key, result_blob_name, sidecar_name
from functions.policy import Decision, Reason, parse_policy
from functions.records import SourceRef, build_record, dumps_line

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text, secret", [
    ("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0c2VjcmV0;EndpointSuffix=core", "c2VjcmV0"),
    ("https://a.blob.core.windows.net/c/b.jpg?sv=2024-01-01&se=2030&sig=AbC%2Bdef", "AbC%2Bdef"),
    ("    'Prediction-Key': 'f00dfeedf00dfeed'", "f00dfeedf00dfeed"),
    ("Ocp-Apim-Subscription-Key: 0123abcd", "0123abcd"),
    ("Authorization: Bearer eyJhbGciOi.eyJzdWIi.sig", "eyJhbGciOi"),
    ("BlobEndpoint=x;SharedAccessSignature=sv=2024&sig=zzz", "sig=zzz"),
])
def test_redact_removes_each_kind_of_credential(text, secret):
    assert secret not in redact(text)
    assert "REDACTED" in redact(text)


def test_redact_keeps_ordinary_text():
    text = "routed incoming/a.jpg (etag 0x8DC): accepted ['cat'] in 80 ms"
    assert redact(text) == text


def test_the_log_filter_redacts_formatted_arguments():
    record = logging.LogRecord("cvops", logging.INFO, __file__, 1, "key %s", ("Prediction-Key: abcdef123",), None)
    RedactingFilter().filter(record)
    assert "abcdef123" not in record.getMessage()


def test_strip_query_drops_a_sas():
    assert strip_query("https://a/c/b.jpg?sv=1&sig=x#f") == "https://a/c/b.jpg"


def test_a_location_may_name_a_prefix_and_refuses_bad_container_names():
    assert Location.parse("outputs/review/", "S") == Location("outputs", "review/")
    assert copy_name(Location("accepted"), "a/b.jpg", "cat") == "cat/a/b.jpg"
    assert copy_name(Location("outputs", "review/"), "a/b.jpg") == "review/a/b.jpg"
    assert copy_name(Location("accepted"), "b.jpg", "a/b") == "a%2Fb/b.jpg"  # one folder per tag, distinct from a_b
    with pytest.raises(ConfigurationError, match="CVOPS_REVIEW_CONTAINER"):
        Location.parse("Review_Images", "CVOPS_REVIEW_CONTAINER")


def test_the_record_key_depends_on_name_and_etag_only():
    assert record_key("c/a.jpg", '"0x1"') == record_key("c/a.jpg", "0x1")
    assert record_key("c/a.jpg", "0x1") != record_key("c/a.jpg", "0x2") != record_key("c/b.jpg", "0x1")


def test_the_results_partition_is_the_arrival_day_in_utc():
    arrived = datetime(2025, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    name = result_blob_name(Location("results"), "c/a.jpg", "0x1", arrived.astimezone(UTC))
    assert name.startswith("date=2025-03-02/") and name.endswith(".jsonl")
    assert sidecar_name("cat/a.jpg") == "cat/a.jpg.cvops.json"


def test_a_record_is_plain_json_without_credentials():
    source = SourceRef("incoming", "a.jpg", '"0x1"', 10, datetime(2025, 1, 1, tzinfo=UTC),
                       uri="https://acct.blob.core.windows.net/incoming/a.jpg?sig=SECRET")
    decision = Decision("quarantine", (), (Reason("corrupt", "failed at https://x/y?sig=SECRET2"),))
    record = build_record(key="k", source=source, decision=decision, policy=parse_policy({"version": "v"}),
                          destinations=["quarantine/a.jpg"], errors=["AccountKey=SECRET3;"])
    text = dumps_line(record).decode()
    assert text.endswith("\n") and text.count("\n") == 1
    assert "SECRET" not in text
    assert json.loads(text)["outcome"] == "quarantine" and record["blob"]["uri"].endswith("/incoming/a.jpg")


def test_local_settings_example_documents_every_setting():
    committed = json.loads((REPO / "local.settings.example.json").read_text())
    assert committed == settings.example_local_settings()
    assert {s.name for s in settings.SETTINGS} <= set(committed["Values"])
    assert all(committed["Values"][s.name] == "" for s in settings.SETTINGS if s.secret)


def test_host_json_pins_the_bundle_and_the_poison_threshold():
    host = json.loads((REPO / "host.json").read_text())
    assert host["extensionBundle"]["version"] == "[4.*, 5.0.0)"
    assert host["extensions"]["blobs"]["poisonBlobThreshold"] >= 1
    assert host["extensions"]["queues"]["messageEncoding"] == "base64"


def test_one_version_has_one_record_name_whatever_offset_its_time_carries():
    instant = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    in_tokyo = instant.astimezone(timezone(timedelta(hours=9)))  # already 2 March there
    names = {result_blob_name(Location("results"), "c/a.jpg", "0x1", when) for when in (instant, in_tokyo)}
    assert names == {f"date=2026-03-01/{record_key('c/a.jpg', '0x1')}.jsonl"}
