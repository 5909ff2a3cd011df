"""Scrubbing for recorded HTTP fixtures (vcrpy cassettes), shared by every recorder in the test suite.

Why one implementation: a cassette recorded against Azure and one recorded against the local services must come out
the same shape, or a replay that passes with one fails with the other. Whatever was recorded against, what reaches
disk names only the fixed fake endpoints (``FAKE_*`` below, whose host names start with ``fake`` as
tests/test_fixtures_hold_no_secrets.py requires), holds no key, token, SAS signature or SAS lifetime, and no real
storage account name or subscription id. Project, tag, image and iteration ids stay: they are not secrets, and a
replay needs them to match paths.

How: a :class:`Scrubber` holds the exact rewrites of one recording (the live endpoints, keys and ids it used, each
mapped to its fake), and applies generic rules after them: SAS query parameters, user delegation keys, any other
Azure resource host name (e.g. Custom Vision's own image storage in ``thumbnailUri``) and subscription ids. Requests
to identity endpoints (token requests) are not recorded at all. Its ``request`` and ``response`` methods are vcrpy's
``before_record_request`` / ``before_record_response`` hooks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

FAKE_CV_ENDPOINT = "https://fake-cvops.cognitiveservices.azure.com"
FAKE_VISION_ENDPOINT = "https://fake-vision.cognitiveservices.azure.com"
FAKE_ACCOUNT = "fakecvops"
FAKE_BLOB_ENDPOINT = f"https://{FAKE_ACCOUNT}.blob.core.windows.net"
FAKE_QUEUE_ENDPOINT = f"https://{FAKE_ACCOUNT}.queue.core.windows.net"
FAKE_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
FAKE_RESOURCE_ID = (f"/subscriptions/{FAKE_SUBSCRIPTION}/resourceGroups/cvops-recorded/providers/"
                    "Microsoft.CognitiveServices/accounts/fake-cvops-prediction")
REDACTED = "REDACTED"

# Replaced by REDACTED (kept, so a reader sees a key was sent) or dropped (they change every run, or say nothing).
SECRET_HEADERS = ("Training-Key", "Prediction-Key", "Ocp-Apim-Subscription-Key", "Authorization")
DROPPED_REQUEST_HEADERS = ("x-ms-client-request-id", "User-Agent", "x-ms-date", "Cookie")
DROPPED_RESPONSE_HEADERS = ("Set-Cookie", "x-ms-client-request-id")
# Token endpoints (Microsoft Entra ID, the instance metadata service): their answers are bearer tokens.
IDENTITY_HOSTS = ("login.microsoftonline.com", "login.windows.net", "169.254.169.254", "localhost:42356")

# SAS parameters that are a signature, a lifetime or an identity: sig, start/expiry, and the user delegation key's
# object id, tenant, times, service and version (sk*). sv/sp/sr stay: they are the same every run and say what the
# SAS allows, which a reader of the cassette wants to see.
SAS_SECRET = re.compile(r"(?i)([?&](?:amp;)?(?:sig|se|st|skoid|sktid|skt|ske|sks|skv|saoid|suoid|scid)=)[^&\"'\s<]*")
# The body of "Get User Delegation Key": the key itself and whose it is.
DELEGATION_KEY = re.compile(r"(<(Value|SignedOid|SignedTid)>)[^<]*(</\2>)")
# Any Azure resource host left after the exact rewrites (Custom Vision's own storage in image URIs, a secondary
# endpoint): one fake per kind of service.
_RESOURCE_HOST = re.compile(r"(?i)(?<![a-z0-9.-])(?!fake|example)([a-z0-9][a-z0-9-]*)(\.(?:cognitiveservices\.azure\.com|"
                            r"(?:blob|queue|table|file|dfs)\.core\.windows\.net))")
SUBSCRIPTION = re.compile(r"(?i)((?:/|%2F)subscriptions(?:/|%2F))[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                          r"[0-9a-f]{12}")


def _fake_host(match: re.Match[str]) -> str:
    suffix = match.group(2)
    return ("fake-external" if suffix.lower().startswith(".cognitiveservices") else "fakeexternal") + suffix


def origin(url: str) -> str:
    """``scheme://host[:port]`` plus any path (Azurite puts the account in the path), without a trailing slash."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"{url!r} is not an absolute URL; give the endpoint as https://<name>.<domain>/")
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def endpoint_rewrites(live: str | None, fake: str) -> list[tuple[str, str]]:
    """Rewrites from a live endpoint (as configured, with or without a trailing slash) to its fake."""
    return [(origin(live), fake)] if live else []


def secret_rewrites(*secrets: str | None) -> list[tuple[str, str]]:
    """Keys (and anything else secret the recording used) to REDACTED, wherever a service echoes them."""
    return [(s, REDACTED) for s in secrets if s and len(s) >= 8]


def resource_id_rewrites(live: str | None) -> list[tuple[str, str]]:
    """The prediction resource's ARM id, as sent raw (bodies) and URL-quoted (the publish call's query)."""
    if not live:
        return []
    return [(live, FAKE_RESOURCE_ID), (quote(live, safe=""), quote(FAKE_RESOURCE_ID, safe=""))]


def storage_rewrites(connection_string: str | None = None, account_url: str | None = None) -> list[tuple[str, str]]:
    """The storage account's blob and queue endpoints (from a connection string or an account URL) to the fake
    account's. Azurite's path-style ``http://127.0.0.1:PORT/devstoreaccount1`` becomes the same host-style fake as
    a real ``https://<account>.blob.core.windows.net``, so both recordings look alike."""
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueServiceClient

    rewrites: list[tuple[str, str]] = []
    if connection_string:
        blob = BlobServiceClient.from_connection_string(connection_string)
        queue = QueueServiceClient.from_connection_string(connection_string)
        rewrites += [(origin(blob.url), FAKE_BLOB_ENDPOINT), (origin(queue.url), FAKE_QUEUE_ENDPOINT)]
        key = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part).get("AccountKey")
        rewrites += secret_rewrites(key)
    elif account_url:
        blob_origin = origin(account_url)
        rewrites.append((blob_origin, FAKE_BLOB_ENDPOINT))
        if ".blob." in blob_origin:
            rewrites.append((blob_origin.replace(".blob.", ".queue.", 1), FAKE_QUEUE_ENDPOINT))
    return rewrites


def _decoded(body: Any) -> str | None:
    """A body as text when it is text (JSON, XML, form); None for images and multipart uploads, which hold no
    endpoint or key and must stay byte-exact."""
    if body is None or isinstance(body, str):
        return body
    if isinstance(body, bytes | bytearray):
        try:
            return bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


@dataclass
class Scrubber:
    """The scrubbing of one recording. ``rewrites`` are exact (live, fake) pairs, applied longest first so an
    endpoint with a path wins over its bare host; ``use`` replaces them (a module fixture fills them once it knows
    the live endpoints, and empties them afterwards)."""

    rewrites: list[tuple[str, str]] = field(default_factory=list)
    drop_request_bodies: bool = False

    def use(self, rewrites: Iterable[tuple[str, str]]) -> None:
        self.rewrites[:] = sorted({(old, new) for old, new in rewrites if old}, key=lambda r: -len(r[0]))

    def text(self, text: str) -> str:
        for old, new in self.rewrites:
            text = text.replace(old, new)
        text = SAS_SECRET.sub(rf"\g<1>{REDACTED}", text)
        text = DELEGATION_KEY.sub(rf"\g<1>{REDACTED}\g<3>", text)
        text = _RESOURCE_HOST.sub(_fake_host, text)
        return SUBSCRIPTION.sub(rf"\g<1>{FAKE_SUBSCRIPTION}", text)

    def headers(self, headers: Mapping[str, Any], dropped: Iterable[str]) -> dict[str, Any]:
        """Key headers REDACTED, ``dropped`` ones removed (names case-insensitive), the rest scrubbed as text
        (``Location`` and ``Operation-Location`` name the endpoint)."""
        secret = {h.lower() for h in SECRET_HEADERS}
        drop = {h.lower() for h in dropped}
        out: dict[str, Any] = {}
        for name, value in headers.items():
            if name.lower() in drop:
                continue
            if name.lower() in secret:
                out[name] = [REDACTED] if isinstance(value, list) else REDACTED
            elif isinstance(value, list):
                out[name] = [self.text(v) if isinstance(v, str) else v for v in value]
            else:
                out[name] = self.text(value) if isinstance(value, str) else value
        return out

    def request(self, request: Any) -> Any | None:
        """vcrpy's ``before_record_request``: None (not recorded) for token requests, else the scrubbed request."""
        if any(host in request.uri for host in IDENTITY_HOSTS):
            return None
        request.uri = self.text(request.uri)
        request.headers = self.headers(dict(request.headers), DROPPED_REQUEST_HEADERS)
        if self.drop_request_bodies:
            # A new request: a streamed body (an image sent with analyze_image_in_stream) stays a stream otherwise.
            from vcr.request import Request

            request = Request(request.method, request.uri, None, dict(request.headers))
        else:
            text = _decoded(request.body)
            if text is not None:
                request.body = self.text(text).encode("utf-8")
        return request

    def response(self, response: dict[str, Any]) -> dict[str, Any]:
        """vcrpy's ``before_record_response``: headers and text bodies scrubbed; binary bodies kept as they are."""
        response["headers"] = self.headers(response.get("headers") or {}, DROPPED_RESPONSE_HEADERS)
        body = response.get("body") or {}
        text = _decoded(body.get("string"))
        if text is not None:
            body["string"] = self.text(text).encode("utf-8")
        return response

    def vcr_config(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments for ``vcr.VCR`` / pytest-recording's ``vcr_config`` that scrub with this Scrubber."""
        return {"before_record_request": self.request, "before_record_response": self.response,
                "decode_compressed_response": True, **extra}


def settings_from(environ: Mapping[str, str], required: Iterable[str], *, any_of: Iterable[str] = ()
                  ) -> dict[str, str] | None:
    """The real-service settings a recording should use: all of ``required`` (and the first set of ``any_of``) when
    they are in ``environ``; None when none of them is (record against the local services).

    A partial set is a mistake that would silently record against the local services instead of Azure: it raises
    a ValueError naming what is missing.
    """
    required = list(required)
    any_of = list(any_of)
    found = {name: environ[name].strip() for name in [*required, *any_of] if (environ.get(name) or "").strip()}
    if not found:
        return None
    missing = [name for name in required if name not in found]
    if any_of and not any(name in found for name in any_of):
        missing.append(" or ".join(any_of))
    if missing:
        raise ValueError(f"recording against Azure needs {', '.join(missing)} as well (set: {', '.join(found)}); "
                         "export them all, or unset them all to record against the local services")
    return found
