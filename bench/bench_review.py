"""What the review page costs a reviewer as the queue grows: records read and time per page load.

Puts ``--waiting`` images in review on Azurite the way the Function App writes them (record, verified copy, the
record beside it), then serves the review page (its WSGI app, through werkzeug's test client: the same code
`cvops review serve` runs, without the socket) and loads the queue ``--loads`` times, deciding one image between
loads as a reviewer does. Prints, for the page as it is (items kept between listings) and for a listing that reads
every record each time (how the page worked before): records read per load and milliseconds per load (median).
Asserts nothing. Run: ``python bench/bench_review.py [--waiting 500] [--loads 10]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a script from a fresh clone
sys.path.insert(0, str(ROOT / "tests" / "pipelines"))

from review_helpers import make_world  # noqa: E402
from werkzeug.test import Client  # noqa: E402

from devkit.local_services import running_azurite  # noqa: E402
from pipelines.review import items  # noqa: E402
from pipelines.review.web import ReviewApi, ReviewApp, loopback_hosts  # noqa: E402


class EveryRecordEachTime(ReviewApi):
    """The listing without kept items: every waiting record read on every load."""

    def list_waiting(self, blob_service, config):
        return items.list_waiting(blob_service, config)


def measure(world, api: ReviewApi, loads: int) -> dict:
    reads = {"n": 0}
    real = items._item

    def counted(*args, **kwargs):
        reads["n"] += 1
        return real(*args, **kwargs)

    items._item = counted
    try:
        client = Client(ReviewApp(world.blob_service, world.config, reviewer="bench", api=api,
                                  allowed_hosts=loopback_hosts(8765)))
        per_load, times = [], []
        for n in range(loads):
            reads["n"] = 0
            started = time.perf_counter()
            answer = client.get("/queue", base_url="http://127.0.0.1:8765")
            times.append((time.perf_counter() - started) * 1000)
            per_load.append(reads["n"])
            assert answer.status_code == 200, answer.status_code
            if n + 1 < loads:  # a reviewer decides the oldest image between loads
                oldest = api.list_waiting(world.blob_service, world.config)[0]
                api.decide(world.blob_service, world.config, oldest.key, reviewer="bench", tags=[oldest.top_tag],
                           reject=False)
        return {"first_load_reads": per_load[0], "later_load_reads_max": max(per_load[1:], default=0),
                "first_load_ms": round(times[0], 1),
                "later_load_ms_p50": round(statistics.median(times[1:]), 1) if len(times) > 1 else None}
    finally:
        items._item = real


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=500)
    parser.add_argument("--loads", type=int, default=10)
    args = parser.parse_args()
    with running_azurite(queue=False) as azurite:
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        results = {}
        for label, api in (("page (items kept)", ReviewApi()), ("every record each load", EveryRecordEachTime())):
            world = make_world(service)
            started = time.perf_counter()
            for i in range(args.waiting):
                world.add(f"bench/{i:05d}.jpg", {"beach": 0.6, "city": 0.4})
            print(f"{label}: {args.waiting} images put in review in {time.perf_counter() - started:.1f} s")
            results[label] = measure(world, api, args.loads)
            world.drop()
    for label, figures in results.items():
        print(f"{label:>24}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
