"""Which moderation API judges an image: Computer Vision 3.2 (:mod:`functions.vision`) or Azure AI Content Safety
(:mod:`functions.content_safety`), as ``CVOPS_MODERATION_API`` says. One call for the handler, one client builder for
the app context, so the handler does not know which API answered and the record still says (``api``, ``api_version``).
"""

from __future__ import annotations

from typing import Any

from cvops import clients, retry
from cvops.pacing import Pacer
from functions import content_safety, vision
from functions.policy import CONTENT_SAFETY

__all__ = ["build_client", "moderate"]


def build_client(api: str, endpoint: str, key: str | None, *, credential: Any = None) -> Any:
    """The SDK client of ``api``: a key, or (no key) the app's identity for the Cognitive Services scope."""
    if api == CONTENT_SAFETY:
        return clients.content_safety_client(endpoint, key or None, credential=None if key else credential)
    return clients.computer_vision_client(endpoint, key or None, credential=None if key else credential)


def moderate(api: str, client: Any, *, data: bytes, pacer: Pacer | None, what: str,
             policy: retry.RetryPolicy) -> vision.Moderation | vision.ImageRefused:
    """Scores (Computer Vision) or severities (Content Safety) for ``data``, or why the service refused it."""
    if api == CONTENT_SAFETY:
        return content_safety.moderate(client, data=data, pacer=pacer, what=what, policy=policy)
    return vision.moderate(client, data=data, pacer=pacer, what=what, policy=policy)
