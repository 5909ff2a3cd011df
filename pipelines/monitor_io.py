"""Reading what :mod:`pipelines.monitor` counts: result records from Blob Storage by date partition, and review
decisions. A thin layer: names, listing and downloads here, every number in the pure module.

Why by date partition: the app writes each record under ``<results>/date=YYYY-MM-DD/`` (the day the image arrived,
:func:`functions.naming.result_blob_name`), so a window of days is listed prefix by prefix and nothing outside it is
listed or read. Records stream through a bounded pool of downloads into the aggregate: memory stays flat however many
records a month holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from cvops.errors import ConfigurationError
from functions.naming import Location
from pipelines.review.commands import parse_since

__all__ = ["Window", "iter_records", "load_rules", "monitor", "parse_baseline", "parse_records", "parse_window"]

DOWNLOADS_IN_FLIGHT = 8
"""Record downloads at once: each is a few hundred bytes, so the round trip, not the bandwidth, sets the pace. Kept
under the storage client's pool of 10 connections, past which urllib3 opens and discards a connection a call."""


class Window:
    """A half-open time window [since, until) in UTC."""

    def __init__(self, since: datetime, until: datetime) -> None:
        if until <= since:
            raise ConfigurationError(f"the window ends ({until.isoformat()}) before it starts ({since.isoformat()})",
                                     hint="give --since earlier than --until")
        self.since, self.until = since, until

    def days(self) -> Iterator[date]:
        day = self.since.date()
        while datetime.combine(day, datetime.min.time(), UTC) < self.until:
            yield day
            day += timedelta(days=1)

    def __contains__(self, moment: datetime) -> bool:
        return self.since <= moment < self.until

    def to_dict(self) -> dict[str, str]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat()}


def parse_window(since: str | None, until: str | None, *, now: datetime, default_days: int = 28) -> Window:
    """``--since``/``--until`` (dates or times, UTC; a date as ``until`` includes that whole day); by default the
    ``default_days`` up to now."""
    end = parse_since(until, "--until") if until else now
    if until and len(until.strip()) == 10:
        end += timedelta(days=1)
    start = parse_since(since, "--since") if since else end - timedelta(days=default_days)
    return Window(start, end)


def parse_baseline(text: str | None, window: Window) -> Window:
    """``START..END`` (dates, END included), or by default the same length of time just before the window."""
    if not text:
        return Window(window.since - (window.until - window.since), window.since)
    start, sep, end = text.partition("..")
    if not sep or not start.strip() or not end.strip():
        raise ConfigurationError(f"--baseline {text!r} is not a window START..END",
                                 setting="--baseline", hint="e.g. --baseline 2026-10-01..2026-10-31")
    finish = parse_since(end, "--baseline")
    if len(end.strip()) == 10:
        finish += timedelta(days=1)
    return Window(parse_since(start, "--baseline"), finish)


def parse_records(raw: bytes) -> list[dict[str, Any]]:
    """The JSON objects of one record blob (JSON Lines; a line that is not a JSON object is skipped)."""
    out = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def iter_records(blob_service: BlobServiceClient, results: Location, window: Window, *,
                 on_unreadable: Callable[[str], None] | None = None) -> Iterator[Mapping[str, Any]]:
    """Every result record whose date partition overlaps the window, listed day by day and downloaded
    :data:`DOWNLOADS_IN_FLIGHT` at a time. The caller filters by arrival time (a partition is a whole UTC day)."""
    container = blob_service.get_container_client(results.container)

    def read(name: str) -> list[dict[str, Any]] | None:
        try:
            return parse_records(container.get_blob_client(name).download_blob().readall())
        except ResourceNotFoundError:
            return None

    with ThreadPoolExecutor(DOWNLOADS_IN_FLIGHT) as pool:
        for day in window.days():
            prefix = results.blob(f"date={day:%Y-%m-%d}") + "/"
            names: list[str] = []
            for blob in container.list_blobs(name_starts_with=prefix):
                names.append(blob.name)
                if len(names) >= 256:
                    yield from _read_all(pool, read, names, on_unreadable)
                    names = []
            yield from _read_all(pool, read, names, on_unreadable)


def _read_all(pool: ThreadPoolExecutor, read: Callable[[str], list[dict[str, Any]] | None], names: list[str],
              on_unreadable: Callable[[str], None] | None) -> Iterator[Mapping[str, Any]]:
    for name, found in zip(names, pool.map(read, names), strict=True):
        if not found:
            if on_unreadable:
                on_unreadable(name)
            continue
        yield from found


def load_rules(path: str | None) -> Any:
    """The rules of ``--rules FILE`` (YAML or JSON; a key given twice is an error), or the defaults."""
    from cvops.strict_yaml import safe_load
    from pipelines.monitor import Rules, parse_rules

    if not path:
        return Rules()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"--rules {path}: cannot be read ({exc.strerror or exc})", setting="--rules",
                                 hint="give a YAML file such as 'psi_above: 0.25'") from None
    try:
        return parse_rules(safe_load(text), f"--rules {path}")
    except ValueError as exc:
        raise ConfigurationError(str(exc), setting="--rules",
                                 hint="keys: psi_above, min_images, review_share_ratio, review_share_increase, agreement_below, "
                                      "min_reviews") from None


def monitor(blob_service: BlobServiceClient, results: Location, *, window: Window, baseline: Window, every: str,
            by: str, depth: int, rules: Any, decisions: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Read the window's and the baseline's records, and the decisions, then :func:`pipelines.monitor.summarise`."""
    from pipelines.monitor import Aggregate, arrived, record_time, summarise

    skipped = {"unreadable_blobs": 0, "without_arrival_time": 0, "decisions_without_agreement": 0}

    def unreadable(_name: str) -> None:
        skipped["unreadable_blobs"] += 1

    current, base = Aggregate(every, by, depth), Aggregate(every, by, depth)
    span = Window(min(window.since, baseline.since), max(window.until, baseline.until))
    for record in iter_records(blob_service, results, span, on_unreadable=unreadable):
        moment = arrived(record)
        if moment is None:
            skipped["without_arrival_time"] += 1
            continue
        for target, limits in ((current, window), (base, baseline)):
            if moment in limits:
                target.add(record)
    for decision in decisions:
        moment = record_time(decision.get("decided_at"))
        if moment is not None and moment in window and not current.add_decision(decision):
            skipped["decisions_without_agreement"] += 1
    return summarise(current, base, rules, window={**window.to_dict(), "every": every},
                     baseline_window=baseline.to_dict(), skipped=skipped)
