"""Where each outcome goes: one table of the app's blob locations, their settings and their defaults.

Why one table: the settings catalogue, the configuration, the handler (a missing container named by its setting), the
backlog queue (outputs it refuses to re-route) and the overlap check all need the same outcome -> location -> setting
mapping; rebuilt in each, a new outcome or a renamed setting would be missed in one of them and fail only in Azure.

Why outcome ``accepted`` lands in container ``classified``: the policy names a *decision* (accepted, review, rejected,
quarantine) while the container names what it *holds* (images classified under ``<tag>/``). The setting
``CVOPS_CLASSIFIED_CONTAINER`` and the default ``classified`` are used by infra/ and by existing deployments, so they
stay; this table is the one place that joins the two names.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BY_KEY", "BY_OUTCOME", "INCOMING", "OUTPUTS", "ROUTES", "SHAREABLE", "TAGGED", "Route"]


@dataclass(frozen=True)
class Route:
    """One blob location of the app: ``key`` is its field on ``AppConfig``; ``outcome`` the policy outcome copied
    there (None for the incoming container and the results); ``tagged`` when copies go under ``<tag>/``."""

    key: str
    setting: str
    default: str
    doc: str
    outcome: str | None = None
    tagged: bool = False


INCOMING = Route("incoming", "CVOPS_INCOMING_CONTAINER", "incoming", "Container whose new blobs are classified.")

OUTPUTS: tuple[Route, ...] = (
    Route("classified", "CVOPS_CLASSIFIED_CONTAINER", "classified", "Accepted images, copied under <tag>/.",
          outcome="accepted", tagged=True),
    Route("review", "CVOPS_REVIEW_CONTAINER", "review", "Images a person must look at.", outcome="review"),
    Route("rejected", "CVOPS_REJECTED_CONTAINER", "rejected", "Images refused by policy (e.g. moderation).",
          outcome="rejected"),
    Route("quarantine", "CVOPS_QUARANTINE_CONTAINER", "quarantine",
          "Images that are not usable (corrupt, unsupported, too large to fix).", outcome="quarantine"),
    Route("results", "CVOPS_RESULTS_CONTAINER", "results",
          "Result records: one JSON per decision and date-partitioned JSON Lines."),
)
"""Every location the app writes to, in the order the settings are documented."""

ROUTES: tuple[Route, ...] = (INCOMING, *OUTPUTS)
BY_KEY: dict[str, Route] = {route.key: route for route in ROUTES}
BY_OUTCOME: dict[str, Route] = {route.outcome: route for route in OUTPUTS if route.outcome is not None}
TAGGED: frozenset[str] = frozenset(route.key for route in OUTPUTS if route.tagged)
"""Keys of locations whose first folder is a tag: they may share a place with no other location."""
SHAREABLE: frozenset[str] = frozenset(route.key for route in OUTPUTS if route.outcome is not None and not route.tagged)
"""Keys of untagged outcome locations: they may share one exact location (each copy is one escaped name)."""
