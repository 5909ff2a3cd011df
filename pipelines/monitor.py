"""Model health over time: what the Function App's result records and people's review decisions say, per period and
per slice, against a baseline window. Pure: records in, numbers and findings out (reading and reports live in
:mod:`pipelines.monitor_io` and :mod:`pipelines.monitor_report`).

Why these measures: a published model fails quietly. A new camera, a seller's new background or a scanner's new
contrast setting changes the images before it changes the accuracy anyone measures, and the first signs are in what
the app already records: the share sent to review grows, the top scores slide, the images' own statistics move, and
people in the review band start disagreeing with the model. Each is counted per slice (a blob-name prefix, a camera
from EXIF, or the model's tag), because a drift in one camera's images is diluted to nothing in the total.

Why bounded memory: a month of records at a million images a day cannot be held. Every measure here is a count or
a fixed-bin histogram, so :class:`Aggregate` costs (periods x slices x bins), whatever the number of records.

The drift test is the **population stability index** over fixed bins (named in every finding): PSI = sum over bins
of (now - base) * ln(now / base), with each share smoothed by half a count so an empty bin is not infinite. The
usual reading (credit-risk practice, where PSI comes from): under 0.1 no shift, 0.1-0.2 moderate, over 0.2 a shift
worth a look. The Kolmogorov-Smirnov distance of the same binned distributions is reported beside it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from functions.records import source_slice

__all__ = ["ALL", "FEATURES", "MONITOR_SCHEMA", "Aggregate", "Feature", "Rules", "SliceStats", "judge",
           "ks_distance", "parse_rules", "period_of", "psi", "record_time", "slice_of"]

MONITOR_SCHEMA = "cvops.monitor/1"
ALL = "*"
"""The slice holding every record of a period."""
DRIFT_TEST = "PSI (population stability index, fixed bins, half-count smoothing)"


@dataclass(frozen=True)
class Feature:
    """A numeric measure of one record, drawn as a histogram over fixed bins (so periods and baselines compare)."""

    name: str
    path: tuple[str, ...]
    low: float
    high: float
    bins: int
    log2: bool = False

    def value(self, record: Mapping[str, Any]) -> float | None:
        if self.name == "top_score":
            return top_score(record)
        current: Any = record
        for part in self.path:
            current = current.get(part) if isinstance(current, Mapping) else None
        if isinstance(current, bool) or not isinstance(current, int | float) or not math.isfinite(current):
            return None
        return float(current)

    def bin(self, value: float) -> int:
        if self.log2:
            value = math.log2(max(value, 1.0))
        position = (value - self.low) / (self.high - self.low) * self.bins
        return min(self.bins - 1, max(0, int(position)))


FEATURES: tuple[Feature, ...] = (
    Feature("top_score", (), 0.0, 1.0, 10),
    Feature("luminance_mean", ("image", "luminance_mean"), 0.0, 256.0, 10),
    Feature("luminance_std", ("image", "luminance_std"), 0.0, 128.0, 8),
    Feature("width", ("image", "width"), 4.0, 14.0, 10, log2=True),
    Feature("height", ("image", "height"), 4.0, 14.0, 10, log2=True),
    Feature("bytes", ("image", "bytes"), 10.0, 23.0, 13, log2=True),
)
"""What is compared with the baseline. Image statistics come from the record's ``image`` field (written by the app
from the decode it already does); a record without one simply adds nothing to that histogram."""


def top_score(record: Mapping[str, Any]) -> float | None:
    """The highest finite probability among the record's predictions; None without predictions."""
    best = None
    for prediction in record.get("predictions") or ():
        p = prediction.get("probability") if isinstance(prediction, Mapping) else None
        if isinstance(p, int | float) and not isinstance(p, bool) and math.isfinite(p):
            best = p if best is None else max(best, p)
    return None if best is None else float(best)


def _top_tag(record: Mapping[str, Any]) -> str | None:
    best, tag = None, None
    for prediction in record.get("predictions") or ():
        if not isinstance(prediction, Mapping):
            continue
        p = prediction.get("probability")
        if isinstance(p, int | float) and not isinstance(p, bool) and math.isfinite(p) and (best is None or p > best):
            best, tag = p, prediction.get("tag")
    return tag if isinstance(tag, str) else None


def arrived(record: Mapping[str, Any]) -> datetime | None:
    """When the image arrived (its blob's Last-Modified, the records' date partition), in UTC."""
    blob = record.get("blob") if isinstance(record.get("blob"), Mapping) else {}
    return record_time(blob.get("last_modified")) or record_time(record.get("processed_at"))


def record_time(text: Any) -> datetime | None:
    """An ISO 8601 time from a record, in UTC (naive means UTC); None when absent or not a time."""
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def period_of(moment: datetime, every: str) -> date:
    """The period a moment falls in: its UTC day, or the Monday of its ISO week."""
    day = moment.astimezone(UTC).date()
    if every == "day":
        return day
    if every == "week":
        return day - timedelta(days=day.weekday())
    raise ValueError(f"every must be 'day' or 'week', not {every!r}")


def _camera(record: Mapping[str, Any]) -> str:
    image = record.get("image") if isinstance(record.get("image"), Mapping) else {}
    exif = image.get("exif") if isinstance(image.get("exif"), Mapping) else {}
    parts = [str(exif[k]).strip() for k in ("make", "model") if isinstance(exif.get(k), str) and exif[k].strip()]
    return " ".join(parts) or "(no EXIF camera)"


def _prefix(name: str, depth: int) -> str:
    """The app's own slice rule (:func:`functions.records.source_slice`, a record's ``blob.slice``), recomputed from
    the name so any depth can be asked, of version-1 records too."""
    return source_slice(name, depth) or "(no prefix)"


def slice_of(record: Mapping[str, Any], by: str, depth: int = 1) -> str:
    """The slice a record belongs to: its blob name's first ``depth`` folders, its camera, or its top tag."""
    if by == "prefix":
        blob = record.get("blob") if isinstance(record.get("blob"), Mapping) else {}
        name = blob.get("name")
        return _prefix(name, depth) if isinstance(name, str) else "(no name)"
    if by == "camera":
        return _camera(record)
    if by == "tag":
        return _top_tag(record) or f"({record.get('outcome', 'no outcome')})"
    raise ValueError(f"by must be 'prefix', 'camera' or 'tag', not {by!r}")


Measured = tuple[str, str | None, list[tuple[str, int]]]
"""A record reduced to what is counted: outcome, top tag, and (feature, bin) for each feature it has."""


def measure(record: Mapping[str, Any]) -> Measured:
    bins = []
    for feature in FEATURES:
        value = feature.value(record)
        if value is not None:
            bins.append((feature.name, feature.bin(value)))
    return str(record.get("outcome")), _top_tag(record), bins


@dataclass
class SliceStats:
    """Counts and histograms of one slice in one period (or in the baseline)."""

    images: int = 0
    outcomes: Counter = field(default_factory=Counter)
    tags: Counter = field(default_factory=Counter)
    histograms: dict[str, list[int]] = field(default_factory=lambda: {f.name: [0] * f.bins for f in FEATURES})
    reviews: int = 0
    agreed: int = 0

    def add(self, record: Mapping[str, Any]) -> None:
        self.count(measure(record))

    def count(self, measured: Measured) -> None:
        """Count one record already measured (an aggregate measures each record once for all its slices)."""
        outcome, tag, bins = measured
        self.images += 1
        self.outcomes[outcome] += 1
        if tag is not None:
            self.tags[tag] += 1
        for name, index in bins:
            self.histograms[name][index] += 1

    def share(self, outcome: str) -> float | None:
        return self.outcomes[outcome] / self.images if self.images else None

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.reviews if self.reviews else None

    def mean_top_score(self) -> float | None:
        counts = self.histograms["top_score"]
        total = sum(counts)
        if not total:
            return None
        width = 1.0 / len(counts)
        return sum((i + 0.5) * width * c for i, c in enumerate(counts)) / total


@dataclass
class Aggregate:
    """Every period's slices, built one record at a time (memory: periods x slices x bins, not records)."""

    every: str
    by: str
    depth: int = 1
    periods: dict[date, dict[str, SliceStats]] = field(default_factory=dict)
    records: int = 0

    def _stats(self, period: date, slice_name: str) -> SliceStats:
        return self.periods.setdefault(period, {}).setdefault(slice_name, SliceStats())

    def add(self, record: Mapping[str, Any]) -> bool:
        """Count one result record; False (and nothing counted) when it carries no arrival time."""
        moment = arrived(record)
        if moment is None:
            return False
        period = period_of(moment, self.every)
        self.records += 1
        measured = measure(record)
        self._stats(period, ALL).count(measured)
        self._stats(period, slice_of(record, self.by, self.depth)).count(measured)
        return True

    def add_decision(self, decision: Mapping[str, Any]) -> bool:
        """Count one review decision in the period it was made, in the slice of the image it is about."""
        moment = record_time(decision.get("decided_at"))
        source = decision.get("source") if isinstance(decision.get("source"), Mapping) else {}
        if moment is None or not isinstance(decision.get("agreed"), bool):
            return False
        period = period_of(moment, self.every)
        record_like = {"blob": {"name": source.get("name")},
                       "predictions": [{"tag": (decision.get("model") or {}).get("top_tag"), "probability": 1.0}]}
        names = {ALL}
        if self.by in ("prefix", "tag"):
            names.add(slice_of(record_like, self.by, self.depth))
        for name in names:
            stats = self._stats(period, name)
            stats.reviews += 1
            stats.agreed += int(decision["agreed"])
        return True

    def pooled(self) -> dict[str, SliceStats]:
        """All periods merged, per slice: the baseline's shape."""
        out: dict[str, SliceStats] = {}
        for slices in self.periods.values():
            for name, stats in slices.items():
                target = out.setdefault(name, SliceStats())
                target.images += stats.images
                target.outcomes.update(stats.outcomes)
                target.tags.update(stats.tags)
                target.reviews += stats.reviews
                target.agreed += stats.agreed
                for feature, counts in stats.histograms.items():
                    merged = target.histograms[feature]
                    for i, c in enumerate(counts):
                        merged[i] += c
        return out


def psi(base: list[int], now: list[int]) -> float | None:
    """Population stability index of two histograms over the same bins; None when either is empty."""
    total_base, total_now = sum(base), sum(now)
    if not total_base or not total_now:
        return None
    bins = len(base)
    value = 0.0
    for b, n in zip(base, now, strict=True):
        pb = (b + 0.5) / (total_base + 0.5 * bins)
        pn = (n + 0.5) / (total_now + 0.5 * bins)
        value += (pn - pb) * math.log(pn / pb)
    return value


def ks_distance(base: list[int], now: list[int]) -> float | None:
    """The largest gap between the two binned cumulative distributions (Kolmogorov-Smirnov's D, at bin edges)."""
    total_base, total_now = sum(base), sum(now)
    if not total_base or not total_now:
        return None
    gap = cb = cn = 0.0
    for b, n in zip(base, now, strict=True):
        cb += b / total_base
        cn += n / total_now
        gap = max(gap, abs(cn - cb))
    return gap


@dataclass(frozen=True)
class Rules:
    """When a slice's period is worth a person's look. Each rule says how much evidence it needs first."""

    psi_above: float = 0.2
    """Drift: PSI of any feature against the baseline above this ..."""
    min_images: int = 200
    """... in a slice-period with at least this many images (also the floor for the review-share rule)."""
    review_share_ratio: float = 2.0
    """The review share at least this many times the baseline's (a baseline under 1 % counts as 1 %) ..."""
    review_share_increase: float = 0.05
    """... and at least this much higher (5 points): 0.6 % to 2 % is a tripling of five images, not news."""
    agreement_below: float = 0.9
    """People agreed with the model's top tag in fewer than this share of reviews ..."""
    min_reviews: int = 30
    """... among at least this many reviews."""

    def describe(self) -> list[str]:
        return [f"drift: {DRIFT_TEST} > {self.psi_above:g} on a slice-period with at least {self.min_images} images",
                f"review share: at least {self.review_share_ratio:g} x the baseline's and "
                f"{self.review_share_increase:.0%} points higher, with at least {self.min_images} images",
                f"review agreement: under {self.agreement_below:g} with at least {self.min_reviews} reviews"]


def parse_rules(data: Any, source: str) -> Rules:
    """Rules from a mapping (a rules file); unknown keys and out-of-range values are errors naming the key."""
    if data is None:
        return Rules()
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: the rules must be a mapping of name: value, e.g. 'psi_above: 0.25'")
    known = {f for f in Rules.__dataclass_fields__}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{source}: unknown rule {unknown[0]!r}; known: {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        integer = key in ("min_images", "min_reviews")
        ok = (isinstance(value, int) if integer else isinstance(value, int | float)) and not isinstance(value, bool)
        share = key in ("agreement_below", "review_share_increase")
        if not ok or not math.isfinite(value) or value < 0 or (share and value > 1):
            kind = "a whole number >= 0" if integer else ("a number in [0, 1]" if share else "a number >= 0")
            raise ValueError(f"{source}: {key} must be {kind}, not {value!r}")
        values[key] = value
    return Rules(**values)


def _drift(base: SliceStats, now: SliceStats) -> dict[str, dict[str, float | None]]:
    out = {}
    for feature in FEATURES:
        b, n = base.histograms[feature.name], now.histograms[feature.name]
        if sum(n) and sum(b):
            value = psi(b, n)
            out[feature.name] = {"psi": round(value, 4) if value is not None else None,
                                 "ks": round(ks_distance(b, n) or 0.0, 4), "images": sum(n)}
    return out


def _slice_row(name: str, stats: SliceStats, base: SliceStats | None, base_name: str | None) -> dict[str, Any]:
    shares = {k: round(v / stats.images, 4) for k, v in sorted(stats.outcomes.items())} if stats.images else {}
    tag_total = sum(stats.tags.values())
    mean = stats.mean_top_score()
    return {
        "slice": name,
        "images": stats.images,
        "outcome_shares": shares,
        "review_share": round(stats.share("review") or 0.0, 4) if stats.images else None,
        "tag_shares": {t: round(c / tag_total, 4) for t, c in stats.tags.most_common()} if tag_total else {},
        "mean_top_score": round(mean, 4) if mean is not None else None,
        "histograms": {k: list(v) for k, v in stats.histograms.items()},
        "baseline_histograms": {k: list(v) for k, v in base.histograms.items()} if base is not None else None,
        "reviews": stats.reviews,
        "agreement": round(stats.agreement, 4) if stats.agreement is not None else None,
        "baseline_slice": base_name,
        "drift": _drift(base, stats) if base is not None else {},
    }


def _baseline_for(name: str, baseline: Mapping[str, SliceStats], rules: Rules) -> tuple[str | None, SliceStats | None]:
    """The slice's own baseline when it had enough images, else the whole baseline (a new camera has no history)."""
    own = baseline.get(name)
    if own is not None and own.images >= rules.min_images:
        return name, own
    whole = baseline.get(ALL)
    return (ALL, whole) if whole is not None and whole.images else (None, None)


def judge(current: Aggregate, baseline: Mapping[str, SliceStats], rules: Rules) -> dict[str, Any]:
    """Per period and slice, the measures and the findings (each naming its rule, slice, period and numbers)."""
    periods = []
    findings: list[dict[str, Any]] = []
    for period in sorted(current.periods):
        slices = current.periods[period]
        rows = []
        for name in sorted(slices, key=lambda s: (s != ALL, s)):
            stats = slices[name]
            base_name, base = _baseline_for(name, baseline, rules)
            row = _slice_row(name, stats, base, base_name)
            rows.append(row)
            findings += _findings(period, row, stats, base, rules)
        periods.append({"period": period.isoformat(), "slices": rows})
    return {"periods": periods, "findings": findings}


def _findings(period: date, row: Mapping[str, Any], stats: SliceStats, base: SliceStats | None,
              rules: Rules) -> list[dict[str, Any]]:
    out = []
    where = {"period": period.isoformat(), "slice": row["slice"]}
    if base is not None and stats.images >= rules.min_images:
        for feature, numbers in row["drift"].items():
            if numbers["psi"] is not None and numbers["psi"] > rules.psi_above:
                out.append({"rule": "drift", **where, "feature": feature, "test": "PSI", "value": numbers["psi"],
                            "limit": rules.psi_above, "images": stats.images,
                            "message": f"{feature} drifted in slice {row['slice']} ({period}): PSI {numbers['psi']:.3f}"
                                       f" > {rules.psi_above:g} over {stats.images} images"
                                       f" (against baseline slice {row['baseline_slice']})"})
        base_share = base.share("review")
        share = stats.share("review") or 0.0
        if base_share is not None:
            floor = max(base_share, 0.01)
            if share >= rules.review_share_ratio * floor and share - base_share >= rules.review_share_increase:
                out.append({"rule": "review_share", **where, "value": round(share, 4),
                            "baseline": round(base_share, 4), "limit": rules.review_share_ratio,
                            "images": stats.images,
                            "message": f"review share in slice {row['slice']} ({period}) is {share:.1%}, "
                                       f"{share / floor:.1f} x the baseline's {base_share:.1%}"
                                       + (" (counted as 1%)" if base_share < floor else "")})
    if stats.reviews >= rules.min_reviews and stats.agreement is not None and stats.agreement < rules.agreement_below:
        out.append({"rule": "agreement", **where, "value": round(stats.agreement, 4), "limit": rules.agreement_below,
                    "reviews": stats.reviews,
                    "message": f"people agreed with the model in {stats.agreement:.1%} of {stats.reviews} reviews "
                               f"in slice {row['slice']} ({period}), under {rules.agreement_below:.0%}"})
    return out


def summarise(current: Aggregate, baseline_agg: Aggregate, rules: Rules, *, window: Mapping[str, Any],
              baseline_window: Mapping[str, Any], skipped: Mapping[str, int]) -> dict[str, Any]:
    """The whole monitor result as plain JSON-ready data."""
    pooled = baseline_agg.pooled()
    result = judge(current, pooled, rules)
    base_all = pooled.get(ALL)
    return {
        "schema": MONITOR_SCHEMA,
        "window": dict(window),
        "baseline": {**baseline_window, "images": base_all.images if base_all else 0,
                     "review_share": round(base_all.share("review") or 0.0, 4) if base_all and base_all.images
                     else None,
                     "slices": {name: s.images for name, s in sorted(pooled.items())}},
        "by": current.by,
        "depth": current.depth,
        "every": current.every,
        "drift_test": DRIFT_TEST,
        "rules": asdict(rules),
        "rules_text": rules.describe(),
        "records": current.records,
        "skipped": dict(skipped),
        **result,
        "ok": not result["findings"],
    }


def feed(aggregate: Aggregate, records: Iterable[Mapping[str, Any]]) -> int:
    """Add records; the number without an arrival time (not counted)."""
    missing = 0
    for record in records:
        if not aggregate.add(record):
            missing += 1
    return missing
