"""What `cvops monitor` costs: records per second and peak memory, for the counting core and for reading from storage.

1. Core: ``--records`` (default 1,000,000) result records generated through the app's own routing and record code
   (devkit/records.py: 8 cameras over 28 days) are streamed into the aggregate, per day and per prefix slice. Prints
   records/s of the counting alone (generation timed apart), and the process's peak RSS before and after, which
   shows that memory does not grow with the number of records.
2. Storage: ``--stored`` (default 5,000) records written to Azurite where the app writes them (date partitions of the
   results container), then read back by :func:`pipelines.monitor_io.monitor`: records/s end to end.

Asserts nothing. Run: ``python bench/bench_monitor.py [--records 1000000] [--stored 5000]``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable as a script from a fresh clone

from azure.storage.blob import BlobServiceClient  # noqa: E402

from devkit.local_services import running_azurite  # noqa: E402
from devkit.records import Slice, generate_records  # noqa: E402
from functions import naming  # noqa: E402
from functions.store import BlobStore  # noqa: E402
from pipelines import monitor_io  # noqa: E402
from pipelines.monitor import Aggregate, Rules  # noqa: E402

START = datetime(2026, 11, 2, tzinfo=UTC)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def core(records: int) -> None:
    days = 28
    slices = [Slice(f"site-{i}/cam", per_day=max(1, records // (8 * days))) for i in range(8)]
    generated = 0
    t0 = time.process_time()
    for _ in generate_records(slices, start=START, days=days):
        generated += 1
    generation = time.process_time() - t0
    before = peak_rss_mib()
    aggregate = Aggregate("day", "prefix")
    t0 = time.process_time()
    for record in generate_records(slices, start=START, days=days):
        aggregate.add(record)
    total = time.process_time() - t0
    counting = max(total - generation, 1e-9)
    print(f"core: {generated:,} records, {len(aggregate.periods)} periods x {len(aggregate.periods[START.date()])} "
          f"slices; counting {generated / counting:,.0f} records/s of CPU ({counting:.1f} s; generating them took "
          f"{generation:.1f} s apart); peak RSS {before:.0f} MiB before counting, {peak_rss_mib():.0f} MiB after")


def storage(stored: int) -> None:
    with running_azurite() as azurite:
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        service.create_container("results")
        results = naming.Location("results")
        store = BlobStore(service)
        slices = [Slice(f"site-{i}/cam", per_day=max(1, stored // (4 * 14))) for i in range(4)]

        def put(record):
            blob = record["blob"]
            name = naming.result_blob_name(results, f"{blob['container']}/{blob['name']}", blob["etag"],
                                           datetime.fromisoformat(blob["last_modified"]))
            store.create_record("results", name, record)

        with ThreadPoolExecutor(8) as pool:
            written = sum(1 for _ in pool.map(put, generate_records(slices, start=START, days=14)))
        window = monitor_io.parse_window("2026-11-09", "2026-11-15", now=datetime.now(UTC))
        baseline = monitor_io.parse_baseline("2026-11-02..2026-11-08", window)
        t0 = time.perf_counter()
        result = monitor_io.monitor(service, results, window=window, baseline=baseline, every="day", by="prefix",
                                    depth=1, rules=Rules(), decisions=[])
        elapsed = time.perf_counter() - t0
        read = result["records"] + result["baseline"]["images"]
        print(f"storage: {written:,} records written to Azurite, {read:,} listed and read by date partition in "
              f"{elapsed:.1f} s: {read / elapsed:,.0f} records/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--stored", type=int, default=5_000)
    args = parser.parse_args()
    core(args.records)
    storage(args.stored)


if __name__ == "__main__":
    main()
