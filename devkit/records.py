"""Result records as the Function App writes them, generated for monitoring tests, the demo and the benchmark.

Why generated through the app's own code: a monitor tested on hand-made dicts would drift from the records the app
really writes. Every record here is routed by :func:`functions.policy.decide` under a real policy and built by
:func:`functions.records.build_record`; only the predictions and the image statistics are drawn from seeded
distributions per slice (a camera, a seller, a site), so a test can plant a change (a camera whose images turn darker,
a slice the model grows unsure of) on a given day and check that monitoring sees it there and nowhere else.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.naming import record_key
from functions.policy import Policy, decide, parse_policy
from functions.records import SourceRef, build_record

__all__ = ["Slice", "generate_records"]

DEFAULT_POLICY = parse_policy({"version": "monitoring-demo", "default_threshold": 0.6, "review_band": 0.2},
                              origin="devkit.records")


@dataclass(frozen=True)
class Slice:
    """One source of images: its blob-name prefix, its camera, how sure the model is of it, how bright its images are.

    ``changes`` maps a day index to the values that hold from that day on (e.g. ``{10: {"luminance": 60}}``: from the
    eleventh day the images are darker)."""

    prefix: str
    camera: tuple[str, str] = ("Contoso", "Cam-1")
    confidence: float = 0.85
    luminance: float = 125.0
    per_day: int = 100
    tags: Sequence[str] = ("beach", "forest", "mountain")
    changes: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)

    def on(self, day: int) -> Slice:
        values: dict[str, Any] = {}
        for start in sorted(self.changes):
            if day >= start:
                values.update(self.changes[start])
        if not values:
            return self
        return Slice(**{**self.__dict__, **values, "changes": {}})


def _predictions(rng: random.Random, source: Slice) -> list[dict[str, Any]]:
    top = rng.choice(list(source.tags))
    score = min(0.999, max(0.05, rng.gauss(source.confidence, 0.1)))
    rest = [t for t in source.tags if t != top]
    shares = [rng.random() for _ in rest]
    total = sum(shares) or 1.0
    out = [{"tag": top, "tag_id": None, "probability": round(score, 6)}]
    out += [{"tag": t, "tag_id": None, "probability": round((1 - score) * s / total, 6)} for t, s in zip(rest, shares,
                                                                                                      strict=True)]
    return sorted(out, key=lambda p: -p["probability"])


def generate_records(slices: Sequence[Slice], *, start: datetime, days: int, seed: int = 7,
                     policy: Policy = DEFAULT_POLICY, container: str = "incoming") -> Iterator[dict[str, Any]]:
    """Records for ``days`` days from ``start``, each slice's ``per_day`` images spread over the day. Deterministic."""
    rng = random.Random(seed)
    for day in range(days):
        for source in slices:
            today = source.on(day)
            for i in range(today.per_day):
                arrived = (start + timedelta(days=day, seconds=int(86_399 * (i + 0.5) / today.per_day))).astimezone(UTC)
                name = f"{today.prefix.rstrip('/')}/day{day:03d}-{i:05d}.jpg"
                etag = f'"0x{rng.getrandbits(60):015X}"'
                predictions = _predictions(rng, today)
                decision = decide(policy, [(p["tag"], p["probability"]) for p in predictions])
                width, height = rng.choice([(4032, 3024), (3024, 4032), (1920, 1080)])
                size = int(rng.gauss(2_400_000, 300_000))
                image = {"format": "JPEG", "width": width, "height": height, "bytes": size,
                         "luminance_mean": round(min(255.0, max(0.0, rng.gauss(today.luminance, 12))), 2),
                         "luminance_std": round(max(1.0, rng.gauss(48, 6)), 2),
                         "exif": {"make": today.camera[0], "model": today.camera[1]}}
                source_ref = SourceRef(container=container, name=name, etag=etag, size=size, last_modified=arrived)
                yield build_record(key=record_key(f"{container}/{name}", etag), source=source_ref, decision=decision,
                                   policy=policy, destinations=[], image=image, predictions=predictions,
                                   model={"publish_name": "demo"}, processed_at=arrived + timedelta(seconds=2))
