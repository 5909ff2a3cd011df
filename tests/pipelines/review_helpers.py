"""Review tests' world: fresh containers in Azurite and review copies written the way the Function App writes them
(result record with If-None-Match, verified copy with the app's metadata, then the record beside the copy)."""

from __future__ import annotations

import io
import itertools
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.storage.blob import BlobServiceClient
from PIL import Image

from functions import naming, routes
from functions.policy import Decision, Reason, parse_policy
from functions.records import SourceRef, build_record
from functions.store import BlobStore
from pipelines.review.items import ReviewConfig

_counter = itertools.count(1)

HOSTILE_NAMES = [
    '<script>alert("x")</script>.jpg',
    "quo'te\"s & amps.png",
    "line\nbreak\r\n.jpg",
    "rtl\u202egpj.exe.jpg",
    "dir//double/slash/.jpg",
    "%2F already%escaped.jpg",
    "trailing.dot.",
    "x.jpg.cvops.json",
]


def image_bytes(seed: int, fmt: str = "JPEG") -> bytes:
    """A small distinct image (a colour per seed)."""
    out = io.BytesIO()
    Image.new("RGB", (32, 24), ((seed * 53) % 256, (seed * 97) % 256, (seed * 29) % 256)).save(out, fmt)
    return out.getvalue()


@dataclass
class ReviewWorld:
    blob_service: BlobServiceClient
    containers: dict[str, str]
    config: ReviewConfig
    incoming: str
    tags: tuple[str, ...] = ("beach", "city", "forest")
    written: list[dict[str, Any]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {routes.BY_KEY[key].setting: name for key, name in self.containers.items()}

    def add(self, name: str, scores: dict[str, float], *, classification_type: str = "multiclass",
            data: bytes | None = None, arrived: datetime | None = None, content_type: str = "image/jpeg",
            suggested: tuple[str, ...] = (), moderation: dict[str, Any] | None = None,
            decision: Decision | None = None) -> dict[str, Any]:
        """Put ``name`` in review as the app does; returns the result record. ``moderation`` (the record's field, as
        ``Moderation.to_dict`` writes it) and ``decision`` (the policy's, e.g. a moderation review) replace the
        default: a top tag in the review band."""
        data = data if data is not None else image_bytes(len(self.written) + 1)
        arrived = arrived or datetime(2026, 11, 30, 3, 0, len(self.written) % 60, tzinfo=UTC)
        etag = f'"0x8DD{uuid.uuid4().hex[:12].upper()}"'
        source = SourceRef(self.incoming, name, etag, len(data), arrived, content_type)
        what = f"{self.incoming}/{name}"
        key = naming.record_key(what, etag)
        policy = parse_policy({"version": "t-1", "classification_type": classification_type,
                               "default_threshold": 0.8, "review_band": 0.3, "no_tag_passes": "review"})
        top_tag, top = max(scores.items(), key=lambda kv: kv[1])
        decision = decision or Decision("review", suggested, (Reason("in_review_band", f"{top_tag} {top:.2f} is in the review "
                                                          "band below 0.80", top_tag, top, 0.8),))
        review = self.config.review
        copy = naming.copy_name(review, name)
        record = build_record(
            key=key, source=source, decision=decision, policy=policy, destinations=[f"{review.container}/{copy}"],
            predictions=[{"tag": t, "tag_id": str(uuid.uuid4()), "probability": p}
                         for t, p in sorted(scores.items(), key=lambda kv: -kv[1])],
            model={"project_id": str(uuid.uuid4()), "publish_name": "prod", "iteration_id": str(uuid.uuid4())},
            moderation=moderation)
        store = BlobStore(self.blob_service)
        record_name = naming.result_blob_name(self.config.results, what, etag, arrived)
        assert store.create_record(self.config.results.container, record_name, record)
        metadata = {"cvops_source_etag": etag.strip('"'), "cvops_key": key,
                    "cvops_record": f"{self.config.results.container}/{record_name}", "cvops_outcome": "review"}
        assert store.put_verified(review.container, copy, data, content_type=content_type, metadata=metadata)
        store.put_json(review.container, naming.sidecar_name(copy), record)
        self.written.append(record)
        return record

    def names(self, key: str) -> list[str]:
        return sorted(b.name for b in self.blob_service.get_container_client(self.containers[key]).list_blobs())

    def read(self, key: str, name: str) -> bytes:
        return self.blob_service.get_blob_client(self.containers[key], name).download_blob().readall()

    def drop(self) -> None:
        for name in self.containers.values():
            self.blob_service.delete_container(name)


def make_world(blob_service: BlobServiceClient) -> ReviewWorld:
    run = f"rv{next(_counter)}x{int(time.time() * 1000) % 100000}"
    containers = {key: f"{run}-{key}" for key in ("incoming", "accepted", "review", "rejected", "quarantine",
                                                  "results")}
    for name in containers.values():
        blob_service.create_container(name)
    config = ReviewConfig.from_environ({routes.BY_KEY[k].setting: v for k, v in containers.items()})
    return ReviewWorld(blob_service, containers, config, containers["incoming"])
