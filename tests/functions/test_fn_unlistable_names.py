"""A blob name Azurite cannot list (a control character: its listing answers HTTP 500 for the whole page) no longer
stops `cvops function run-local`: every other blob is listed and routed, and a warning says where the skipped name is.
"""

from __future__ import annotations

import itertools
import logging

import pytest
from azure.storage.blob import BlobServiceClient
from fn_helpers import scene

from pipelines import listing
from pipelines.run_local import run_local

_counter = itertools.count(1)


def test_run_local_routes_every_other_blob_when_one_name_holds_a_control_character(function_env, caplog):
    """Before: the listing failed (HTTP 500 from Azurite, retried, then raised) and run-local routed nothing."""
    for name in ("in/a.jpg", "in/b\x01.jpg", "in/c.jpg"):
        function_env.upload(name, scene("beach", seed=len(name)))
    with caplog.at_level(logging.WARNING, logger="cvops.run_local"):
        stats = run_local(once=True, backlog_queue=False)
    assert stats.ok and stats.delivered == 2
    assert sorted(r["blob"]["name"] for r in function_env.records()) == ["in/a.jpg", "in/c.jpg"]
    assert "a blob name after 'in/a.jpg' cannot be listed" in caplog.text and "before 'in/b\\t'" in caplog.text


@pytest.mark.parametrize(("names", "listed"), [
    (["a.jpg", "b\x01x.jpg", "b2.jpg", "c.jpg", "d/e.jpg", "d/f\x02.jpg", "d/f\x03.jpg", "d/g.jpg"],
     ["a.jpg", "b2.jpg", "c.jpg", "d/e.jpg", "d/g.jpg"]),
    (["\x01first.jpg", "a.jpg"], ["a.jpg"]),
    (["a.jpg", "a.jpg\x1f", "a.jpg\t.png", "a.jpg\r", "zz\x7f\x00.jpg", "zz\x7f.jpg"],
     ["a.jpg", "a.jpg\t.png", "a.jpg\r", "zz\x7f.jpg"]),
    (["only\x0b"], []),
    (["x\uffff", "y.jpg"], ["y.jpg"]),  # a non-character (U+FFFF) is not XML either
    (["a.jpg", "\uffff"], ["a.jpg"]),  # nothing a marker can hold sorts above it: the rest is skipped, with a warning
])
def test_listing_steps_over_unlistable_names_and_keeps_every_listable_one(azurite, blob_service, names, listed):
    container = blob_service.create_container(f"unlistable-{next(_counter)}")
    try:
        for name in names:
            container.get_blob_client(name).upload_blob(b"x")
        quiet = BlobServiceClient.from_connection_string(azurite.connection_string, retry_total=0)  # 500s: at once
        quiet = quiet.get_container_client(container.container_name)
        assert [b.name for b in listing.list_blobs(quiet)] == listed
    finally:
        blob_service.delete_container(container.container_name)
