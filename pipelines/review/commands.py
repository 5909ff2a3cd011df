"""The bodies of ``cvops review export`` and ``cvops review stats`` (pipelines/cli.py only declares their options):
storage and locations from the operator's settings, then the pure modules."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobServiceClient

from cvops.errors import ConfigurationError
from functions.naming import printable
from pipelines.review import decisions, manifest, stats
from pipelines.review.items import ReviewConfig, review_blob_service

__all__ = ["export", "malformed_lines", "open_review", "parse_since", "stats_report"]


def open_review(cli_settings: Any = None) -> tuple[BlobServiceClient, ReviewConfig]:
    """The storage client (the CLI's storage settings, else the app's ``CVOPS_STORAGE``) and the app's locations
    (``CVOPS_*_CONTAINER``, with the app's defaults)."""
    return review_blob_service(os.environ, cli_settings), ReviewConfig.from_environ(os.environ)


def parse_since(text: str, option: str = "--since") -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 time (UTC when it gives no offset)."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(f"{option} {text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time",
                                 setting=option, hint="e.g. --since 2026-11-01") from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def export(blob_service: BlobServiceClient, config: ReviewConfig, *, since: datetime,
           out: str | None) -> tuple[dict[str, Any], str]:
    """Finish any interrupted move or undo first (so every path in the manifest exists), then build the manifest of the
    decisions made since ``since``; write it to ``out`` when given. Returns (summary, manifest text); the summary's
    ``malformed`` names each decision record left out and why."""
    from pipelines.review.undo import complete_pending_undos

    completed = decisions.complete_pending(blob_service, config) + complete_pending_undos(blob_service, config)
    malformed: list[tuple[str, str]] = []
    found = decisions.list_decisions(blob_service, config, since=since, malformed=malformed)
    built = manifest.manifest_rows(found, malformed=malformed)
    text = manifest.render(built, csv_format=bool(out) and out.lower().endswith(".csv"))
    if out:
        Path(out).write_text(text, encoding="utf-8")
    return {"since": since.isoformat(), "out": out, "completed_pending": completed, **built.to_dict()}, text


def stats_report(blob_service: BlobServiceClient, config: ReviewConfig, *, since: datetime | None = None,
                 target: float = stats.DEFAULT_TARGET, min_support: int = stats.DEFAULT_MIN_SUPPORT,
                 policy_file: str | None = None) -> dict[str, Any]:
    """:func:`stats.review_stats` over the decision records (since ``since``), with the thresholds of
    ``policy_file`` when given (else the ones the records state)."""
    malformed: list[tuple[str, str]] = []
    found = decisions.list_decisions(blob_service, config, since=since, malformed=malformed)
    thresholds = None
    if policy_file:
        from functions.policy import load_policy

        policy = load_policy(policy_file, Path.cwd(), setting="--policy")
        tags = {o.tag for o in stats.observations(found)}
        thresholds = {tag: policy.threshold(tag) for tag in tags}
    return stats.review_stats(found, target=target, min_support=min_support, thresholds=thresholds,
                              malformed=malformed)


def malformed_lines(summary: dict[str, Any]) -> list[str]:
    """One line per malformed decision record in a summary or report (``malformed``), for the operator's terminal:
    the record's name and why, both shown printable (a record's name is data, and may hold controls)."""
    return [f"left out: decision record {printable(str(m['record']))} is malformed ({printable(str(m['why']))}); "
            "fix or remove it" for m in summary.get("malformed") or []]
