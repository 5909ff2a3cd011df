"""Fetching images by URL, as the real service does for CreateImagesFromUrls, QuickTestImageUrl and ClassifyImageUrl.

Only hosts on an allow-list are fetched (loopback by default, e.g. Azurite SAS URLs): a local service that fetches any
URL it is given would let any caller make this machine reach into its network. Redirects are followed only to allowed
hosts, and at most `max_bytes + 1` bytes are read, so an oversized image is recognised without being downloaded whole.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

DEFAULT_ALLOWED_HOSTS = ("127.0.0.1", "localhost", "::1")
TIMEOUT_SECONDS = 15.0


class FetchError(Exception):
    """The URL could not be fetched; the message says why (never echoing query strings, which may hold SAS tokens)."""


def redact(url: str) -> str:
    """The URL without its query string: SAS signatures must not end up in logs or error messages."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class UrlFetcher:
    def __init__(self, allowed_hosts: Iterable[str] = DEFAULT_ALLOWED_HOSTS, *, max_bytes: int) -> None:
        self.allowed_hosts = {h.lower().strip("[]") for h in allowed_hosts}
        self.max_bytes = max_bytes
        fetcher = self

        class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
                fetcher.check(newurl)
                return super().redirect_request(req, fp, code, msg, headers, newurl)

        self._opener = urllib.request.build_opener(_CheckedRedirects)

    def check(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise FetchError(f"URL {redact(url)} must be http or https.")
        host = (parts.hostname or "").lower()
        if host not in self.allowed_hosts:
            raise FetchError(
                f"Host {host or '(none)'} is not on the local service's allow-list; start it with "
                f"--allow-url-host {host or 'HOST'} to fetch from there.")

    def fetch(self, url: str) -> bytes:
        """The body of `url`, at most max_bytes + 1 bytes (one more than allowed marks it as too big)."""
        self.check(url)
        try:
            with self._opener.open(urllib.request.Request(url, method="GET"), timeout=TIMEOUT_SECONDS) as resp:
                return resp.read(self.max_bytes + 1)
        except urllib.error.HTTPError as exc:
            raise FetchError(f"GET {redact(url)} answered {exc.code}.") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FetchError(f"GET {redact(url)} failed: {reason}.") from exc

    def fetch_many(self, urls: Sequence[str]) -> list[bytes | FetchError]:
        """Fetch a batch in parallel (as Azure pulls a batch's images concurrently); errors are returned, not raised."""
        def one(url: str) -> bytes | FetchError:
            try:
                return self.fetch(url)
            except FetchError as exc:
                return exc

        if len(urls) <= 1:
            return [one(u) for u in urls]
        with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
            return list(pool.map(one, urls))
