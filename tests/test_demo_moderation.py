"""The demo's moderation stage: the uploads classifier is trained and published, the seed policy's moderation bands are
copied into its policy, and every upload the dev kit drew for a moderation band is blocked or sent to review with the
score that crossed the band, each upload recorded once. Real services: a fresh Azurite and local Custom Vision service
(with its moderation stand-in), the `cvops` commands as child processes, as the demo runs them."""

from __future__ import annotations

import os

import yaml
from azure.storage.blob import BlobServiceClient

from devkit.demo import Demo, DemoSize
from devkit.demo_moderation import SEED_POLICY, SYMBOL, print_moderation, run_moderation_stage, tally, uploads
from devkit.local_services import running_azurite


def record(name: str, outcome: str, *reasons: dict, tags: tuple[str, ...] = ()) -> dict:
    return {"blob": {"name": name}, "outcome": outcome, "tags": list(tags), "reasons": list(reasons)}


def test_tally_counts_why_each_upload_was_blocked_or_reviewed_and_names_misrouted_or_missing_ones():
    items = [("a.jpg", b"", "adult reject"), ("b.jpg", b"", "gore review"), ("c.jpg", b"", "clean"),
             ("d.jpg", b"", "adult review"), ("e.jpg", b"", "clean")]
    reject = {"code": "moderation_reject", "message": "adult score 0.950 is above 0.7", "tag": "adult"}
    review = {"code": "moderation_review", "message": "gore score 0.550 is at or above 0.4", "tag": "gore"}
    unsure = {"code": "review_band", "message": "top tag clean scores 0.650, in the review band", "tag": "clean"}
    records = {"a.jpg": [record("a.jpg", "rejected", reject)], "b.jpg": [record("b.jpg", "review", review)],
               "c.jpg": [record("c.jpg", "review", unsure, tags=("clean",))],
               "d.jpg": [record("d.jpg", "accepted", tags=("clean",))]}

    summary = tally(records, items)

    assert summary["outcomes"] == {"rejected": 1, "review": 2, "accepted": 1}
    assert summary["why"] == {"rejected": {"adult (reject band)": 1},
                              "review": {"gore (review band)": 1, "classifier unsure": 1}}
    assert summary["problems"] == ["d.jpg (adult review) was routed to accepted, not review",
                                   "e.jpg: 0 result records (expected exactly 1)"]
    assert ("rejected", "a.jpg", "adult reject", "adult score 0.950 is above 0.7") in summary["lines"]


def test_stage_blocks_and_reviews_each_band_with_its_score_and_the_classifier_flags_the_symbol(
        tmp_path, start_local_cv, capsys):
    cv = start_local_cv()
    with running_azurite(location=tmp_path / "azurite", log_dir=tmp_path / "logs") as azurite:
        env = {**os.environ, "VISION_TRAINING_ENDPOINT": cv.endpoint, "VISION_TRAINING_KEY": cv.training_key,
               "VISION_PREDICTION_ENDPOINT": cv.endpoint, "VISION_PREDICTION_KEY": cv.prediction_key,
               "VISION_PREDICTION_RESOURCE_ID": cv.prediction_resource_id,
               "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
               "CVOPS_STORAGE": azurite.connection_string, "CVOPS_SPEC": "", "NO_COLOR": "1"}
        demo = Demo(root=tmp_path, size=DemoSize(), env=env)
        blob_service = BlobServiceClient.from_connection_string(azurite.connection_string)

        summary = run_moderation_stage(demo.cvops, demo.env, blob_service, tmp_path, seed=7)
        review_blobs = [b.name for b in blob_service.get_container_client(summary["review_container"]).list_blobs()]

    items = uploads(7)
    assert summary["problems"] == []
    assert summary["bands"] == yaml.safe_load(SEED_POLICY.read_text())["moderation"]   # the seed's bands, copied
    drawn = {name: what for name, _, what in items}
    by_name = {name: (outcome, reasons) for outcome, name, _, reasons in summary["lines"]}
    for name, what in drawn.items():
        if what.endswith("reject"):
            assert by_name[name][0] == "rejected" and "is above 0.7" in by_name[name][1]
        elif what.endswith("review"):
            assert by_name[name][0] == "review" and "is at or above 0.4" in by_name[name][1]
    # Counted from the records: the drawn band images, plus whatever clean scene the colour stand-in misjudges
    # (it is no moderation model: a warm mountain scene can measure as one large skin-coloured region).
    misjudged = {name: outcome for outcome, name, what, _ in summary["lines"]
                 if what == "clean" and outcome == "rejected"}
    assert summary["why"]["rejected"] == {"adult (reject band)": 2 + len(misjudged), "gore (reject band)": 2}
    assert summary["why"]["review"]["adult (review band)"] == 2 and summary["why"]["review"]["gore (review band)"] == 2
    assert summary["accepted_tags"].get(SYMBOL, 0) >= 3                       # the classifier finds the symbol
    assert sum(summary["outcomes"].values()) == len(items)
    assert any(name.startswith("photos/adult_review_") for name in review_blobs)   # the review page's queue
    print_moderation(summary)
    shown = capsys.readouterr().out
    assert f"{4 + len(misjudged)} blocked" in shown and "adult (review band) 2" in shown
    print(shown)
