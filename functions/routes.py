"""Where each outcome goes: one table of the app's blob locations, their settings and their defaults.

Why one table: the settings catalogue, the configuration, the handler (a missing container named by its setting), the
backlog queue (outputs it refuses to re-route) and the overlap check all need the same outcome -> location -> setting
mapping; rebuilt in each, a new outcome or a renamed setting would be missed in one of them and fail only in Azure.

Why the names agree: outcome ``accepted`` lands in container ``accepted``, set by ``CVOPS_ACCEPTED_CONTAINER`` and held
by ``AppConfig.accepted``, so a reader who knows one name finds the other three. Until issue 12 the container, its
setting and the field were called ``classified``, and a newcomer looking for the accepted images had to learn that
join first. Records keep their ``outcome`` values: readers of the results depend on them.

How existing deployments keep routing where they did: a route's ``legacy_settings`` are its former setting names,
still read by :func:`functions.config.route_location` (the one reader of a route's setting, for the app and the review
tool). Only the former name set: its value is used and one warning says to rename it; both set to the same value: the
new name wins and the warning says to delete the old one; both set to different values: a ConfigurationError naming
both, since either choice could route images somewhere the operator did not mean. infra/ takes the container as the
``acceptedContainer`` parameter: an existing deployment passes ``classified`` to keep its container.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BY_KEY", "BY_OUTCOME", "INCOMING", "LEGACY_SETTINGS", "OUTPUTS", "ROUTES", "SHAREABLE", "TAGGED", "Route"]


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
    legacy_settings: tuple[str, ...] = ()
    """Former names of ``setting``, still read (deprecated) so a deployment configured before a rename keeps its
    container; see :func:`functions.config.route_location`."""


INCOMING = Route("incoming", "CVOPS_INCOMING_CONTAINER", "incoming", "Container whose new blobs are classified.")

OUTPUTS: tuple[Route, ...] = (
    Route("accepted", "CVOPS_ACCEPTED_CONTAINER", "accepted", "Accepted images, copied under <tag>/.",
          outcome="accepted", tagged=True, legacy_settings=("CVOPS_CLASSIFIED_CONTAINER",)),
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
LEGACY_SETTINGS: dict[str, Route] = {name: route for route in ROUTES for name in route.legacy_settings}
"""Each former setting name -> the route that now owns it."""
BY_KEY: dict[str, Route] = {route.key: route for route in ROUTES}
BY_OUTCOME: dict[str, Route] = {route.outcome: route for route in OUTPUTS if route.outcome is not None}
TAGGED: frozenset[str] = frozenset(route.key for route in OUTPUTS if route.tagged)
"""Keys of locations whose first folder is a tag: they may share a place with no other location."""
SHAREABLE: frozenset[str] = frozenset(route.key for route in OUTPUTS if route.outcome is not None and not route.tagged)
"""Keys of untagged outcome locations: they may share one exact location (each copy is one escaped name)."""
