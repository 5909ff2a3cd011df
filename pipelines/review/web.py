"""`cvops review serve`: the review page, a small server-rendered web app over the review container.

Why server-rendered HTML and one small script: a reviewer needs a list, an image, its scores and a few buttons; a page
that works without a build step (and, for clicks, without JavaScript) is one file to audit. The script only maps keys to
the page's own buttons and links (a key for every tag, :func:`key_bindings`; ``x`` reject, ``s`` skip, ``u`` undo,
arrows; Enter does what the focused control says); every decision is an ordinary form POST that
:func:`pipelines.review.decisions.decide` applies exactly once, and an undo one that :func:`pipelines.review.undo.undo`
records once beside it.

Why these defences, each for a concrete attack:

- **Listen on loopback** unless ``--allow-remote``; anything else also needs a token (``?token=`` once, answered by a
  page that sets an HttpOnly SameSite=Strict cookie and then moves on within the site, so a link followed from another
  site works too; the cookie holds an HMAC of the token, never the token; compared in constant time). A user-chosen
  token must be strong (:data:`pipelines.review.access.TOKEN_RULE`, said in the error), and wrong tokens are slowed
  down per client address (:class:`pipelines.review.access.GuessThrottle`). On loopback without a token, the ``Host``
  header must name loopback (``localhost`` or a loopback address, with this port), so a DNS-rebinding page
  (``evil.example`` resolving to 127.0.0.1) gets a 403, not the queue.
- **CSRF**: every form carries a token checked server-side (an HMAC of the browser's session cookie with a per-process
  secret: nothing is stored per request, so no flood of cookie-less requests can push a reviewer's session out), and a
  POST must come from this origin (``Origin``, else ``Referer``); decisions are POST only, so no link or image on
  another site can decide anything. A refused form answers a page that recovers with one key (R: the queue, a GET),
  never advice to resend the stale form.
- **Cookies are per server**: their names carry the port, with the ``__Host-`` prefix over HTTPS (cookies ignore
  ports: another server on the same host would otherwise receive or overwrite them).
- **One client cannot stop the others** (:mod:`pipelines.review.server`): a thread per connection, the TLS handshake in
  that thread under a deadline, an idle timeout on every connection, a cap on open connections that closes the oldest
  waiting one first.
- **Requests are bounded and clean**: a body over 64 KB is a 413, chunked or not (a cut or oversized form is never
  acted on); a request line over 64 KB a 414; a control character in the path a 400 (nothing echoed); error pages say
  in words what happened and what to do, never an exception's name or text.
- **Hostile names and tags** (``<img src=x onerror=...>``, quotes, an RTL override, a newline, ``beach`` + U+200B)
  are data: every value reaches the HTML through :class:`markupsafe.Markup` formatting (escaped); every blob name,
  tag, reason and model name is shown through :func:`functions.naming.printable` (controls, zero-width and bidi
  characters as ``\\u202e``, so two tags never look alike), and never in a URL: URLs carry the record key.
- **A strict Content-Security-Policy** (no inline script or style at all), ``X-Frame-Options: DENY``, ``nosniff``.
- **Images** are served through the app with a type sniffed from their bytes (JPEG, PNG, GIF, BMP, WebP, TIFF): the
  stored Content-Type came from whoever uploaded the blob (``text/html`` would run as a page of this origin); anything
  else is an attachment, and the image answer carries its own ``sandbox`` policy.
- **Logs** carry the method, the path (record keys only) and the status, never the query (which may hold the token);
  a token's value never appears in an error or a log line.
"""

from __future__ import annotations

import contextlib
import getpass
import hmac
import io
import ipaddress
import logging
import re
import secrets
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup
from werkzeug.exceptions import (
    BadRequest,
    Forbidden,
    HTTPException,
    NotFound,
    RequestEntityTooLarge,
    RequestTimeout,
    TooManyRequests,
)
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, select_address_family
from werkzeug.wrappers import Request, Response

from cvops.errors import ConfigurationError, CvopsError
from cvops.redaction import RedactingFilter, redact, register_secret
from functions.naming import printable
from functions.policy import MODERATION_SCORES
from pipelines.review import access
from pipelines.review.server import ConnectionHandler, Limits, PageServer

__all__ = ["Limits", "ReviewApi", "ReviewApp", "RunningPage", "ServeOptions", "after_decision", "host_allowed",
           "image_type", "key_bindings", "listen_options", "log_requests", "loopback_host", "neighbours", "same_origin",
           "start", "token_matches"]

log = logging.getLogger("cvops.review.web")

STATIC = Path(__file__).with_name("static")
COMMAND_KEYS = frozenset({"x", "s", "u"})
"""Keys the page keeps for itself (reject, skip, undo): never a tag's key."""
SECOND_ROW = "qwertyiopadfghjklzcvbnm"
"""Letters that pick the 11th tag onwards, in keyboard order (command keys and tags' own initials left out)."""
MAX_BODY = 64 * 1024
"""The largest request body (a decision's form is a few hundred bytes)."""
_KEY = re.compile(r"\A[0-9a-f]{32}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
IMAGE_CSP = "default-src 'none'; sandbox"
_SNIFF: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"BM", 0, "image/bmp"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
)


# --- pure rules ---------------------------------------------------------------------------------------------------

def key_bindings(tags: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The keys that pick each tag: its position key, and its initial when it is an ASCII letter no other tag starts
    with and not a command key (``x`` reject, ``s`` skip, ``u`` undo). ``tags`` in display order (sorted, so a key
    always means the same tag from one image to the next).

    Position keys: ``1``-``9``, ``0`` for the tenth, then a second row of letters (``q w e r ...``, keyboard order)
    that are neither a command key nor another tag's initial. Why: a project with 12 tags left tags 10-12 without a
    key, so a keyboard reviewer could not choose them at all; 33 tags have a key each this way."""
    initials = Counter(tag[:1].lower() for tag in tags)
    own = {first for first, n in initials.items()
           if n == 1 and first.isascii() and first.isalpha() and first not in COMMAND_KEYS}
    slots = [*"1234567890", *(c for c in SECOND_ROW if c not in own and c not in COMMAND_KEYS)]
    bindings: dict[str, tuple[str, ...]] = {}
    for i, tag in enumerate(tags):
        keys = [slots[i]] if i < len(slots) else []
        first = tag[:1].lower()
        if first in own:
            keys.append(first)
        bindings[tag] = tuple(keys)
    return bindings


def token_matches(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison (a byte-by-byte ``==`` tells an attacker, by its timing, how much of a guess is right)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass"))


def same_origin(host_url: str, origin: str | None, referer: str | None) -> bool:
    """True when a POST comes from a page of this server: its ``Origin`` (sent by every current browser on a form
    POST), else its ``Referer``, has this server's scheme, host and port. Neither header: refused (a browser always
    sends one of them here; their absence is a hand-made request, and the CSRF token alone should not carry it)."""
    own = urlsplit(host_url)
    for header in (origin, referer):
        if header and header != "null":
            theirs = urlsplit(header)
            return (theirs.scheme.lower(), theirs.netloc.lower()) == (own.scheme.lower(), own.netloc.lower())
    return False


def loopback_host(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost`` and the rest of 127/8."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def loopback_hosts(port: int) -> frozenset[str]:
    """The ``Host`` headers a browser sends to this server on loopback by name (:func:`host_allowed` also takes any
    loopback address with this port)."""
    return frozenset({f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"})


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    """A ``Host`` header this page answers on loopback without a token: one of ``allowed``, or any loopback *address*
    (``127.0.0.2``, ``[::1]``) with the same port (``--host 127.0.0.2`` prints that address). An address cannot be
    a rebound DNS name, so only names are held to the list."""
    host = host.strip().lower()
    if host in allowed:
        return True
    name, _, port = host.rpartition(":")
    if not name or not port.isdigit() or not any(a.rpartition(":")[2] == port for a in allowed):
        return False
    if name.startswith("[") != name.endswith("]"):
        return False
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeOptions:
    """Where the page listens and who may use it. ``token`` is None on loopback unless one was asked for."""

    host: str
    port: int
    reviewer: str
    token: str | None
    generated_token: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None

    @property
    def remote(self) -> bool:
        return not loopback_host(self.host)

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


def listen_options(host: str, port: int, *, reviewer: str | None, token: str | None, allow_remote: bool,
                   new_token: Callable[[], str] = lambda: secrets.token_urlsafe(32),
                   tls_cert: str | None = None, tls_key: str | None = None) -> ServeOptions:
    """Check the listening address, the token rules and the TLS pair; generate a token for a remote page that was
    given none.

    Pure apart from ``new_token`` and reading the TLS files (:func:`tls_context` proves they load, so a bad pair is
    an error before anything listens): the rules are tested without a socket. Errors name the option to change.
    """
    if (tls_cert is None) != (tls_key is None):
        raise ConfigurationError("--tls-cert and --tls-key go together: the certificate and its private key",
                                 setting="--tls-cert/--tls-key", hint="pass both PEM files, or neither")
    if tls_cert is not None and tls_key is not None:
        tls_context(tls_cert, tls_key)
    options = _listen_rules(host, port, reviewer=reviewer, token=token, allow_remote=allow_remote, new_token=new_token)
    return ServeOptions(options.host, options.port, options.reviewer, options.token, options.generated_token,
                        tls_cert, tls_key)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server TLS context from a PEM certificate (chain) and its unencrypted PEM private key, TLS 1.2 at least; a
    ConfigurationError that names the option and what is wrong otherwise (never the files' contents).

    Why the page serves TLS itself: with ``--allow-remote`` the token and the images cross the network, and a TLS
    proxy is one more thing to set up right. An encrypted key is refused rather than prompted for: the page may run
    where no one can type a passphrase.
    """
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not Path(path).is_file():
            raise ConfigurationError(f"{option} {printable(path)} is not a file", setting=option,
                                     hint="give the PEM file's path")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2

    def no_passphrase() -> bytes:
        raise ConfigurationError("--tls-key is encrypted (it asks for a passphrase)", setting="--tls-key",
                                 hint="give an unencrypted PEM key (e.g. openssl pkey -in key.pem -out plain.pem), "
                                      "readable only by the account that runs the page")

    try:
        context.load_cert_chain(cert, key, password=no_passphrase)
    except ssl.SSLError as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        hint = ("the key does not belong to the certificate: give the key the certificate was issued for"
                if "KEY_VALUES_MISMATCH" in str(reason).upper() else
                "both must be PEM (-----BEGIN CERTIFICATE----- / -----BEGIN PRIVATE KEY-----)")
        raise ConfigurationError(f"--tls-cert and --tls-key do not load as a certificate and its key ({reason})",
                                 setting="--tls-cert/--tls-key", hint=hint) from None
    except OSError as exc:
        raise ConfigurationError(f"--tls-cert or --tls-key cannot be read: {exc.strerror or type(exc).__name__}",
                                 setting="--tls-cert/--tls-key", hint="check the files' permissions") from None
    return context


def _listen_rules(host: str, port: int, *, reviewer: str | None, token: str | None, allow_remote: bool,
                  new_token: Callable[[], str]) -> ServeOptions:
    """The address and token rules of :func:`listen_options`."""
    reviewer = (reviewer or _os_user()).strip()
    if not reviewer or not reviewer.isprintable() or len(reviewer) > 64:
        raise ConfigurationError(f"--reviewer {printable(reviewer)!s} is not a name (1-64 printable characters)",
                                 setting="--reviewer", hint="pass --reviewer NAME")
    problem = None if token is None else access.token_problem(token)
    if problem is not None:
        raise ConfigurationError(f"--token is refused ({problem}): a token needs {access.TOKEN_RULE}",
                                 setting="--token", hint="leave it out to have one generated and printed once")
    if loopback_host(host):
        return ServeOptions(host, port, reviewer, token)
    if not allow_remote:
        raise ConfigurationError(
            f"--host {printable(host)} is not a loopback address: the review page (images, decisions) would be reachable "
            "from the network", setting="--host",
            hint="keep the default 127.0.0.1 (and use an SSH tunnel), or pass --allow-remote: a token is then required")
    if token is None:
        return ServeOptions(host, port, reviewer, new_token(), generated_token=True)
    return ServeOptions(host, port, reviewer, token)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (a container), no USER variable
        return ""


def image_type(data: bytes) -> str | None:
    """The image type the bytes say they are (not what the uploader's Content-Type claimed); None when not an image
    the page shows."""
    for magic, offset, kind in _SNIFF:
        if data[offset:offset + len(magic)] == magic:
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def neighbours(keys: Sequence[str], current: str) -> tuple[str | None, str | None]:
    """(previous, next) key around ``current`` in queue order, wrapping; a key not in the queue has as next the first."""
    if not keys:
        return None, None
    if current not in keys:
        return keys[-1], keys[0]
    i = keys.index(current)
    if len(keys) == 1:
        return None, None
    return keys[i - 1], keys[(i + 1) % len(keys)]


def after_decision(before: Sequence[str], decided: str, still_waiting: Sequence[str]) -> str | None:
    """The item to show after ``decided``: the next one in the queue as it was shown, still waiting, else the first
    still waiting (so a reviewer walks the queue forward instead of jumping back to an image they skipped)."""
    waiting = set(still_waiting)
    if decided in before:
        i = before.index(decided)
        for key in [*before[i + 1:], *before[:i]]:
            if key in waiting:
                return key
    return still_waiting[0] if still_waiting else None


# --- what the page shows of an item -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ItemView:
    """The fields the page shows of a :class:`pipelines.review.items.ReviewItem`: plain data for the templates."""

    key: str
    name: str
    arrived: str
    model: str
    reason: str
    scores: tuple[tuple[str, float], ...]
    tags: tuple[str, ...]
    suggested: tuple[str, ...]
    multilabel: bool
    problem: str | None = None
    moderation: str = ""
    """The moderation answer as one line (``computer-vision: adult 0.552 · racy 0.930 · gore 0.000``), or empty."""

    @classmethod
    def of(cls, item: Any) -> ItemView:
        model = item.model or {}
        return cls(
            key=item.key,
            name=item.source_name,
            arrived=_when(item.arrived),
            model=" · ".join(str(model[k]) for k in ("publish_name", "iteration_id") if model.get(k)) or "unknown",
            reason=item.reason or "-",
            scores=tuple(item.scores),
            tags=tuple(sorted(item.known_tags)),
            suggested=tuple(item.suggested),
            multilabel=item.classification_type == "multilabel",
            problem=getattr(item, "problem", None),
            moderation=_moderation_line(getattr(item, "moderation", ()), getattr(item, "moderation_api", None)),
        )


def _moderation_line(values: Sequence[tuple[str, float]], api: str | None) -> str:
    """Scores with three decimals, severities (Content Safety: whole numbers) as ``severity N``."""
    if not values:
        return ""
    shown = " · ".join(f"{name} {value:.3f}" if name in MODERATION_SCORES else f"{name} severity {value:g}"
                       for name, value in values)
    return f"{api}: {shown}" if api else shown


def _when(value: Any) -> str:
    """An ISO time as ``2026-11-30 04:12:03 UTC`` (what a person reads); text that is not one, as it is."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value or "unknown")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


# --- sessions -----------------------------------------------------------------------------------------------------

class Session:
    """One browser, as one request sees it: its CSRF token (derived from its cookie, see
    :func:`pipelines.review.access.csrf_token`) and the messages waiting for its next page (read from the store only
    when a page shows them, so an image or script request never swallows them)."""

    def __init__(self, sid: str, csrf: str, store: access.Flashes, last: access.LastDecisions) -> None:
        self.sid, self.csrf, self._store, self._last = sid, csrf, store, last
        self._flashes: list[tuple[str, str]] | None = None

    @property
    def undoable(self) -> tuple[str, float] | None:
        """(key, monotonic time) of this browser's last applied decision: the page offers to undo it for a while."""
        return self._last.get(self.sid)

    @undoable.setter
    def undoable(self, value: tuple[str, float] | None) -> None:
        self._last.set(self.sid, value)

    @property
    def flashes(self) -> list[tuple[str, str]]:
        if self._flashes is None:
            self._flashes = self._store.take(self.sid)
        return self._flashes

    @flashes.setter
    def flashes(self, value: list[tuple[str, str]]) -> None:
        self._flashes = value

    def keep(self) -> None:
        """Store what this request left unshown (a message for the page a redirect leads to)."""
        if self._flashes:
            self._store.keep(self.sid, self._flashes)


# --- the app ------------------------------------------------------------------------------------------------------

class ReviewApi:
    """The review API the page calls (:mod:`pipelines.review.items`, :mod:`pipelines.review.decisions`), as one
    object so a test can wrap it (count calls, hold a decision back to race two reviewers).

    It keeps the items it has read (:data:`pipelines.review.items.ItemCache`): the page lists what is waiting on
    every view and after every decision, and only the copies new since the last listing need their record read."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, str], Any] = {}

    def list_waiting(self, blob_service: Any, config: Any) -> list[Any]:
        from pipelines.review.items import list_waiting

        return list_waiting(blob_service, config, known=self._known)

    @staticmethod
    def get_item(blob_service: Any, config: Any, key: str) -> Any:
        from pipelines.review.items import get_item

        return get_item(blob_service, config, key)

    @staticmethod
    def read_image(blob_service: Any, item: Any) -> tuple[bytes, str]:
        from pipelines.review.items import read_image

        return read_image(blob_service, item)

    @staticmethod
    def decide(blob_service: Any, config: Any, key: str, *, reviewer: str, tags: list[str], reject: bool) -> Any:
        from pipelines.review.decisions import decide

        return decide(blob_service, config, key, reviewer=reviewer, tags=tags, reject=reject)

    @staticmethod
    def undo(blob_service: Any, config: Any, key: str, *, reviewer: str) -> Any:
        from pipelines.review.undo import undo

        return undo(blob_service, config, key, reviewer=reviewer)

    @staticmethod
    def stats(blob_service: Any, config: Any) -> dict[str, Any]:
        from pipelines.review.commands import stats_report

        return stats_report(blob_service, config)

    @staticmethod
    def read_decision(blob_service: Any, config: Any, key: str) -> dict[str, Any] | None:
        from pipelines.review.decisions import read_decision

        return read_decision(blob_service, config, key)


class ReviewApp:
    """The WSGI application over one review location, deciding as one reviewer."""

    def __init__(self, blob_service: Any, config: Any, *, reviewer: str, token: str | None = None,
                 allowed_hosts: frozenset[str] | None = None, api: Any = None, port: int | None = None) -> None:
        self.blob_service, self.config, self.reviewer = blob_service, config, reviewer
        self.token, self.allowed_hosts, self.port = token, allowed_hosts, port
        self.body_timeout = Limits().body_timeout
        self.api = api if api is not None else ReviewApi()
        self._access = access.access_cookie_value(token) if token is not None else None
        self._secret = secrets.token_bytes(32)  # the CSRF tokens' key: forms from before a restart are refused
        self.flashes = access.Flashes()
        self.last_decisions = access.LastDecisions()
        self.throttle = access.GuessThrottle()
        self._seen: dict[str, Any] = {}  # key -> item from the last listing: an image request needs no listing
        self._seen_lock = threading.Lock()
        self.url_map = Map([
            Rule("/", endpoint="home", methods=["GET"]),
            Rule("/queue", endpoint="queue", methods=["GET"]),
            Rule("/stats", endpoint="stats", methods=["GET"]),
            Rule("/item/<key>", endpoint="item", methods=["GET"]),
            Rule("/item/<key>/decide", endpoint="decide", methods=["POST"]),
            Rule("/item/<key>/undo", endpoint="undo", methods=["POST"]),
            Rule("/image/<key>", endpoint="image", methods=["GET"]),
            Rule("/static/<name>", endpoint="static", methods=["GET"]),
            Rule("/favicon.ico", endpoint="favicon", methods=["GET"]),
        ], strict_slashes=False)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        extra: list[tuple[str, str]] = []
        try:
            _check_path(environ)
            _bound_body(environ, self.body_timeout)
            request = Request(environ)
            request.max_form_memory_size = MAX_BODY
            request.max_content_length = MAX_BODY
            response = self.dispatch(request)
        except HTTPException as exc:
            response = self._error(exc.code or 500, _words(exc))
            extra = [(k, v) for k, v in exc.get_headers(environ) if k.lower() in ("retry-after", "allow")]
        except CvopsError as exc:
            log.warning("review page: %s", exc)
            response = self._error(502, f"The review storage did not answer as expected: {redact(str(exc))[:300]}")
        except Exception:  # storage errors: the traceback in the operator's terminal, words on the page
            log.exception("review page: internal error")
            response = self._error(500, "Something went wrong on the server while answering this page; the details "
                                        "are in the terminal that runs cvops review serve.")
        for name, value in extra:
            response.headers[name] = value
        _secure(response)
        return response(environ, start_response)

    # -- request handling ------------------------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        if self.allowed_hosts is not None and not host_allowed(request.host, self.allowed_hosts):
            raise Forbidden("This page answers only to its own loopback address (the Host header names another): "
                            "open the address cvops review serve printed.")
        if self._access is not None:
            signed_in = token_matches(self._access, request.cookies.get(self._cookie(request, "token")))
            if "token" in request.args:
                return self._sign_in(request, signed_in)
            if not signed_in:
                raise Forbidden("This page needs its token: open the address cvops review serve printed (with its "
                                "?token=).")
        sid = request.cookies.get(self._cookie(request, "session"))
        fresh = not access.session_id_valid(sid)
        if fresh:
            sid = access.new_session_id()
        assert sid is not None
        session = Session(sid, access.csrf_token(self._secret, sid), self.flashes, self.last_decisions)
        adapter = self.url_map.bind_to_environ(request.environ)
        endpoint, args = adapter.match()
        if "key" in args and not _KEY.match(args["key"]):
            raise NotFound("There is no such image here.")
        response = getattr(self, f"on_{endpoint}")(request, session, **args)
        session.keep()
        if fresh:
            response.set_cookie(self._cookie(request, "session"), sid, httponly=True, samesite="Strict", path="/",
                                secure=request.is_secure)
        return response

    def _cookie(self, request: Request, kind: str) -> str:
        return access.cookie_name(kind, self.port, https=request.is_secure)

    def _sign_in(self, request: Request, signed_in: bool) -> Response:
        """``?token=``: check it (unless this client must first wait for its wrong guesses), then set the cookie and
        move on to the same path without the token.

        Why a page and not a redirect: a SameSite=Strict cookie set by a navigation that came from another site is not
        sent along that navigation's redirects, so a ``?token=`` link followed from a chat or a mail page landed on a
        403. The page's own refresh is a navigation from this site, which carries the cookie. It also drops the token
        from the address bar and (Referrer-Policy: no-referrer) from every Referer."""
        target = request.path if self._routable(request) else "/"
        address = request.remote_addr or "unknown"
        if not signed_in:
            wait = self.throttle.wait(address)
            if wait > 0:
                raise TooManyRequests(f"Too many wrong tokens came from your address: try again in {wait:.0f} s, "
                                      "with the address cvops review serve printed.", retry_after=max(1, round(wait)))
            if not token_matches(self.token, request.args.get("token")):
                self.throttle.failed(address)
                raise Forbidden("This token is not the page's: open the address cvops review serve printed.")
            self.throttle.succeeded(address)
        html = Markup('<!doctype html><html lang="en"><head><meta charset="utf-8">'
                      '<meta http-equiv="refresh" content="0; url={target}"><title>cvops review</title>'
                      '<link rel="stylesheet" href="/static/review.css"></head><body data-view="signed-in">'
                      '<main class="empty"><p>Token accepted. <a id="continue" href="{target}">Open the review page</a>'
                      '</p></main></body></html>').format(target=target)
        response = Response(str(html), mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.set_cookie(self._cookie(request, "token"), self._access or "", httponly=True, samesite="Strict",
                            path="/", secure=request.is_secure)
        return response

    def _routable(self, request: Request) -> bool:
        if not request.path.startswith("/") or request.path.startswith("//") or "\\" in request.path:
            return False
        try:
            self.url_map.bind_to_environ(request.environ).match(method="GET")
        except HTTPException:
            return False
        return True

    def _waiting(self) -> list[Any]:
        items = list(self.api.list_waiting(self.blob_service, self.config))
        with self._seen_lock:
            self._seen = {item.key: item for item in items}
        return items

    def on_home(self, request: Request, session: Session) -> Response:
        waiting = self._waiting()
        if waiting:
            return _redirect(f"/item/{waiting[0].key}")
        body = Markup('<main class="empty"><h1>Nothing is waiting for review.</h1>'
                      '<p>New images appear here when the routing policy sends them to review. '
                      '<a href="/queue">The queue</a></p></main>')
        return self._page("Nothing waiting", body, session, waiting=0, view="empty")

    def on_queue(self, request: Request, session: Session) -> Response:
        views = [ItemView.of(item) for item in self._waiting()]
        rows = Markup("").join(Markup(
            '<tr><td>{n}</td><td><a href="/item/{key}"><img src="/image/{key}" alt="" loading="lazy"></a></td>'
            '<td><a href="/item/{key}" class="name">{name}</a></td><td>{top}</td><td>{reason}</td>'
            '<td><time>{arrived}</time></td></tr>').format(
                n=i + 1, key=v.key, name=printable(v.name),
                top=f"{printable(v.scores[0][0])} {v.scores[0][1]:.2f}" if v.scores else "-",
                reason=printable(v.problem or v.reason), arrived=v.arrived)
            for i, v in enumerate(views))
        first = Markup('<a id="next" href="/item/{}">start <kbd>→</kbd></a>').format(views[0].key) if views else ""
        body = Markup('<main class="queue"><h1>{n} waiting for review {first}</h1>'
                      '<table><thead><tr><th>#</th><th></th><th>Image</th><th>Model\'s top tag</th><th>Why</th>'
                      '<th>Arrived</th></tr></thead><tbody>{rows}</tbody></table></main>').format(
                          n=len(views), first=first, rows=rows)
        return self._page("Queue", body, session, waiting=len(views), view="queue")

    def on_stats(self, request: Request, session: Session) -> Response:
        """What the reviews say about the thresholds: the numbers `cvops review stats` prints."""
        report = self.api.stats(self.blob_service, self.config)
        waiting = len(self._waiting())

        def share(value: Any) -> str:
            return "-" if value is None else f"{value:.0%}"

        def number(value: Any) -> str:
            return "-" if value is None else f"{value:g}"

        rows = Markup("").join(Markup(
            "<tr><td>{tag}</td><td class=num>{reviewed}</td><td class=num>{agreed}</td><td class=num>{rejected}</td>"
            "<td class=num>{other}</td><td class=num>{agreement}</td><td class=num>{threshold}</td>"
            "<td class=num>{suggested}</td><td>{note}</td></tr>").format(
                tag=printable(str(t["tag"])), reviewed=t["reviewed"], agreed=t["agreed"], rejected=t["rejected"],
                other=t["other_tag"], agreement=share(t["agreement"]), threshold=number(t["threshold"]),
                suggested=number(t["suggested"]), note=t["note"])
            for t in report["tags"])
        body = Markup(
            '<main class="queue stats"><h1>{n} decisions, {agreed} agreed with the model\'s top tag ({share})</h1>'
            "<table><thead><tr><th>Tag</th><th>Reviewed</th><th>Agreed</th><th>Rejected</th><th>Other tag</th>"
            "<th>Agreement</th><th>Threshold</th><th>Could be</th><th>What it says</th></tr></thead>"
            "<tbody>{rows}</tbody></table><p class=hint>Agreement: the share of reviews in which people kept the "
            "model's tag. \"Could be\": the lowest accept threshold at which they agreed at least {target} of the time "
            "over {support} or more reviews (<code>cvops review stats</code> prints the same).</p>{malformed}</main>"
        ).format(n=report["decisions"], agreed=report["agreed_with_top_tag"], share=share(report["agreement"]),
                 rows=rows, target=share(report["target"]), support=report["min_support"],
                 malformed=Markup("").join(Markup('<p class="hint malformed">Left out: decision record {} is malformed '
                                                  '({}).</p>').format(printable(str(m["record"])), printable(str(m["why"])))
                                           for m in report.get("malformed") or []))
        return self._page("Stats", body, session, waiting=waiting, view="stats")

    def on_item(self, request: Request, session: Session, key: str) -> Response:
        waiting = self._waiting()
        keys = [item.key for item in waiting]
        item = next((i for i in waiting if i.key == key), None)
        if item is None:
            session.flashes.append(("info", self._gone_message(key)))
            following = after_decision(keys, key, keys)
            return _redirect(f"/item/{following}" if following else "/")
        view = ItemView.of(item)
        previous, following = neighbours(keys, key)
        body = _item_body(view, csrf=session.csrf, position=keys.index(key) + 1, total=len(keys),
                          previous=previous, following=following)
        return self._page(printable(view.name), body, session, waiting=len(keys), view="item")

    def on_decide(self, request: Request, session: Session, key: str) -> Response:
        self._form_checks(request, session)
        action = request.form.get("action", "tag")
        if action not in ("tag", "confirm", "reject"):
            raise BadRequest("This form asked for something the page does not do: nothing was recorded.")
        reject = action == "reject"
        chosen = [] if reject else list(dict.fromkeys(request.form.getlist("tag")))
        with self._seen_lock:
            before = list(self._seen)
        item = self._seen.get(key)
        shown = printable(item.source_name) if item is not None else "that image"
        try:
            result = self.api.decide(self.blob_service, self.config, key, reviewer=self.reviewer, tags=chosen,
                                     reject=reject)
        except ValueError as exc:  # a choice the item does not allow (no tag, two in Multiclass, an unknown tag)
            session.flashes.append(("error", f"{shown}: {exc}"))
            return _redirect(f"/item/{key}")
        session.flashes.append(_result_message(result, shown, me=self.reviewer))
        if result.status == "applied":
            session.undoable = (key, time.monotonic())
        still = [i.key for i in self._waiting()]
        following = after_decision(before, key, still)
        return _redirect(f"/item/{following}" if following else "/")

    def on_undo(self, request: Request, session: Session, key: str) -> Response:
        """Undo this reviewer's decision on ``key`` (:func:`pipelines.review.undo.undo`): the image comes back to
        review under a new key, shown next; a refusal (too late, already undone, not yours) is said on the page."""
        from pipelines.review.undo import UndoRefused

        self._form_checks(request, session)
        session.undoable = None
        try:
            result = self.api.undo(self.blob_service, self.config, key, reviewer=self.reviewer)
        except UndoRefused as exc:
            session.flashes.append(("error", f"not undone: {exc}"))
            return _redirect("/")
        session.flashes.append(("ok", "decision undone: the image is back in review"))
        return _redirect(f"/item/{result.new_key}")

    def _form_checks(self, request: Request, session: Session) -> None:
        """The checks every form POST (a decision, an undo) passes: this origin, this browser's form token."""
        if not same_origin(request.host_url, request.headers.get("Origin"), request.headers.get("Referer")):
            raise Forbidden("A decision must be posted from this page itself: this one came from another origin "
                            "(another site or port), and nothing was recorded.")
        if not token_matches(session.csrf, request.form.get("csrf")):
            raise Forbidden("This page is out of date (the server was restarted, or the form came from an older "
                            "page): nothing was recorded. Press R to reload the queue, then decide again.")

    def on_image(self, request: Request, session: Session, key: str) -> Response:
        with self._seen_lock:
            item = self._seen.get(key)
        if item is None:
            item = self.api.get_item(self.blob_service, self.config, key)
        if item is None:
            raise NotFound("this image is no longer waiting for review")
        try:
            data, _stored_type = self.api.read_image(self.blob_service, item)
        except FileNotFoundError:
            raise NotFound("this image is no longer waiting for review") from None
        kind = image_type(data)
        response = Response(data, mimetype=kind or "application/octet-stream")
        response.headers["Content-Security-Policy"] = IMAGE_CSP
        response.headers["Content-Disposition"] = "inline" if kind else 'attachment; filename="review-item.bin"'
        response.headers["Cache-Control"] = "private, max-age=600"
        return response

    def on_static(self, request: Request, session: Session, name: str) -> Response:
        kinds = {"review.js": "text/javascript", "review.css": "text/css", "recover.js": "text/javascript"}
        if name not in kinds:
            raise NotFound("no such file")
        response = Response((STATIC / name).read_bytes(), mimetype=kinds[name])
        response.headers["Cache-Control"] = "no-cache"
        return response

    def on_favicon(self, request: Request, session: Session) -> Response:
        return Response(status=204)  # no icon; an answer, so the browser's console stays free of 404s

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _gone_message(self, key: str) -> str:
        decision = self.api.read_decision(self.blob_service, self.config, key)
        if decision is not None:
            return "that image was " + _decided_by(decision, self.reviewer)
        return "that image is no longer waiting for review"

    def _page(self, title: str, body: Markup, session: Session, *, waiting: int, view: str) -> Response:
        flashes, session.flashes = session.flashes, []
        notes = Markup("").join(Markup('<p class="flash {}" role="status">{}</p>').format(kind, text)
                                for kind, text in flashes)
        notes += _undo_form(session)
        html = Markup(
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<title>{title} · cvops review</title><link rel="stylesheet" href="/static/review.css">'
            '<script src="/static/review.js" defer></script></head>'
            '<body data-view="{view}"><header><a href="/queue" class="brand">cvops review</a>'
            '<a href="/queue" class="count">{waiting} waiting</a><a href="/stats" class="count">stats</a>'
            '<span class="who">reviewing as <b>{reviewer}</b></span>'
            '<span class="help">the key on a tag picks it · <kbd>x</kbd> reject · <kbd>s</kbd> skip · '
            '<kbd>u</kbd> undo · <kbd>←</kbd><kbd>→</kbd> move</span></header>'
            '<div class="flashes">{notes}</div>{body}</body></html>'
        ).format(title=title, view=view, waiting=waiting, reviewer=printable(self.reviewer), notes=notes, body=body)
        response = Response(str(html), mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"  # back/reload shows the queue as it is now, never a stale form
        return response

    def _error(self, status: int, message: str) -> Response:
        """An error page in words, with one way on: R (or Enter on the focused link) loads the queue, a GET, so a
        refused form is never sent again (recover.js; the link works without it)."""
        html = Markup('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{status} · cvops review'
                      '</title><link rel="stylesheet" href="/static/review.css">'
                      '<script src="/static/recover.js" defer></script></head><body data-view="error">'
                      '<main class="empty"><h1>{status} {phrase}</h1><p class="why">{message}</p>'
                      '<p><a id="recover" href="/queue" autofocus>Press <kbd>R</kbd> to reload the queue</a></p>'
                      '</main></body></html>').format(status=status, phrase=HTTP_STATUS_CODES.get(status, "Error"),
                                                      message=message)
        response = Response(str(html), status=status, mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        return response


def _undo_form(session: Session) -> Markup:
    """The Undo button for the session's last decision while it may still be undone (nothing otherwise)."""
    from pipelines.review.undo import UNDO_WINDOW

    if session.undoable is None or time.monotonic() - session.undoable[1] >= UNDO_WINDOW.total_seconds():
        return Markup("")
    return Markup('<form method="post" action="/item/{key}/undo" class="flash undo">'
                  '<input type="hidden" name="csrf" value="{csrf}">'
                  '<button type="submit" id="undo">Undo that decision <kbd>u</kbd></button></form>').format(
                      key=session.undoable[0], csrf=session.csrf)


def _malformed_body(view: ItemView, *, position: int, total: int, nav: Markup, skip_to: str) -> Markup:
    """An item whose record is malformed: the image, its name and why it cannot be reviewed; no choices (the
    decision would rest on a record that does not say what the model said), only the way on."""
    return Markup(
        '<main class="item"><section class="picture"><img src="/image/{key}" alt="the image under review"></section>'
        '<aside><p class="position">{position} of {total} <span class="nav">{nav}</span></p>'
        '<h1 class="name" dir="ltr">{name}</h1>'
        '<p class="flash error malformed" role="status">This image cannot be reviewed here: {problem}. '
        'Repair or remove the record beside its review copy (the .cvops.json); the rest of the queue is unaffected.'
        '</p>'
        '<p class="actions"><a id="skip" href="{skip_to}" class="skip"><kbd>s</kbd> Skip</a></p></aside></main>'
    ).format(key=view.key, position=position, total=total, nav=nav, name=printable(view.name),
             problem=printable(view.problem or ""), skip_to=skip_to)


def _item_body(view: ItemView, *, csrf: str, position: int, total: int, previous: str | None,
               following: str | None) -> Markup:
    nav = Markup("").join([
        Markup('<a id="prev" href="/item/{}"><kbd>←</kbd> previous</a>').format(previous) if previous else Markup(""),
        Markup('<a id="next" href="/item/{}">next <kbd>→</kbd></a>').format(following) if following else Markup(""),
    ])
    skip_to = f"/item/{following}" if following else "/queue"
    if view.problem:
        return _malformed_body(view, position=position, total=total, nav=nav, skip_to=skip_to)
    bindings = key_bindings(view.tags)
    score_of = dict(view.scores)
    top = view.scores[0][0] if view.scores else None
    rows = []
    for tag in view.tags:
        keys = bindings[tag]
        label = Markup("{keys}<span class=\"tag\">{tag}</span>").format(
            keys=Markup("").join(Markup("<kbd>{}</kbd>").format(k) for k in keys), tag=printable(tag))
        if view.multilabel:
            control = Markup('<label class="pick"><input type="checkbox" name="tag" value="{tag}" data-keys="{keys}">'
                             '{label}</label>').format(tag=tag, keys=" ".join(keys), label=label)
        else:
            control = Markup('<button type="submit" class="pick" name="tag" value="{tag}" data-keys="{keys}">{label}'
                             '</button>').format(tag=tag, keys=" ".join(keys), label=label)
        rows.append(Markup('<tr class="{cls}"><td>{control}</td><td><meter min="0" max="1" value="{score:.4f}">'
                           '</meter></td><td class="num">{score:.3f}</td></tr>').format(
                               cls="top" if tag == top else "", control=control, score=score_of.get(tag, 0.0)))
    confirm = (Markup('<button type="submit" name="action" value="confirm" id="confirm" class="confirm">'
                      'Confirm <kbd>Enter</kbd></button>') if view.multilabel else Markup(""))
    suggested = (Markup('<dt>Suggested</dt><dd class="suggested">{}</dd>').format(
        ", ".join(map(printable, view.suggested))) if view.suggested else Markup(""))
    return Markup(
        '<main class="item"><section class="picture"><img src="/image/{key}" alt="the image under review"></section>'
        '<aside><p class="position">{position} of {total} <span class="nav">{nav}</span></p>'
        '<h1 class="name" dir="ltr">{name}</h1>'
        '<dl><dt>Why review</dt><dd class="reason">{reason}</dd>{moderation}{suggested}'
        '<dt>Arrived</dt><dd><time>{arrived}</time></dd><dt>Model</dt><dd class="model">{model}</dd></dl>'
        '<form method="post" action="/item/{key}/decide" id="decide" data-multilabel="{multilabel}">'
        '<input type="hidden" name="csrf" value="{csrf}">'
        '<p class="hint">{hint}</p><table class="scores">{rows}</table>'
        '<p class="actions">{confirm}<button type="submit" name="action" value="reject" id="reject" class="reject">'
        '<kbd>x</kbd> Reject</button><a id="skip" href="{skip_to}" class="skip"><kbd>s</kbd> Skip</a></p></form>'
        '</aside></main>').format(
            key=view.key, position=position, total=total, nav=nav, name=printable(view.name),
            reason=printable(view.reason),
            moderation=Markup('<dt>Moderation</dt><dd class="moderation">{}</dd>').format(printable(view.moderation))
            if view.moderation else Markup(""),
            suggested=suggested, arrived=view.arrived, model=printable(view.model),
            multilabel="true" if view.multilabel else "false",
            csrf=csrf, hint="Several tags may apply: pick them, then confirm." if view.multilabel else "Pick the tag:",
            rows=Markup("").join(rows), confirm=confirm, skip_to=skip_to)


def _decided_by(decision: Mapping[str, Any], me: str) -> str:
    """"decided by alice at 2026-11-30 04:12:03 UTC (beach)" from a decision record."""
    who = str(decision.get("reviewer") or "someone")
    by = "you" if who == me else printable(who)
    what = "rejected" if decision.get("decision") == "rejected" else ", ".join(map(str, decision.get("tags") or ()))
    return f"decided by {by} at {_when(decision.get('decided_at'))}" + (f" ({printable(what)})" if what else "")


def _result_message(result: Any, shown: str, *, me: str) -> tuple[str, str]:
    """The line shown above the next image: what this decision did, or who decided first."""
    if result.status == "applied":
        decision = result.decision or {}
        what = "rejected" if decision.get("decision") == "rejected" else "tagged " + ", ".join(decision.get("tags") or ())
        return "ok", f"{shown}: {printable(what)}"
    if result.status == "already_decided":
        return "warn", f"{shown}: already {_decided_by(result.decision or {}, me)}; your choice was not recorded"
    return "info", f"{shown}: no longer waiting for review"


_WORDS = {
    400: "This request was not understood (a malformed address or form): nothing was done.",
    404: "There is no such page here.",
    405: "This address does not take that kind of request (decisions are posted by the page's own buttons).",
    413: "This request's body is larger than any form of this page (64 KB): nothing was done.",
}


def _words(exc: HTTPException) -> str:
    """What an error page says: the page's own description, or words for the status when werkzeug raised it with its
    generic text (never an exception's name)."""
    if exc.description and exc.description != type(exc).description:
        return exc.description
    return _WORDS.get(exc.code or 500, exc.name)


def _check_path(environ: dict[str, Any]) -> None:
    """A control character in the path (``%0D%0A`` decoded) is a 400 before anything reads it: no page has one, and
    echoed into a header it broke the answer (a 500)."""
    if _CONTROL.search(environ.get("PATH_INFO", "")):
        raise BadRequest("This address has a control character (such as a line break) in it: no page of the review "
                         "page has one.")


def _bound_body(environ: dict[str, Any], deadline: float) -> None:
    """Read the body here, whole, at most :data:`MAX_BODY` and within ``deadline`` seconds, before anything parses it.

    Why: werkzeug limits a body by its Content-Length, and a chunked one (which has none) was cut at the limit and the
    cut form acted on; and a client trickling a body a byte at a time kept its connection (and a place under the
    connection cap) busy for as long as it liked. Over the limit: 413; cut short or malformed: 400; too slow: 408.
    Whichever, nothing reads the form."""
    chunked = bool(environ.get("wsgi.input_terminated"))
    if not chunked:
        declared = environ.get("CONTENT_LENGTH") or "0"
        if not declared.isdigit():
            raise BadRequest("This request's Content-Length is not a number: nothing was done.")
        if int(declared) > MAX_BODY:
            raise RequestEntityTooLarge()
        if int(declared) == 0:
            return
    want = MAX_BODY + 1 if chunked else int(environ["CONTENT_LENGTH"])
    stream, data = environ["wsgi.input"], bytearray()
    read = getattr(stream, "read1", stream.read)  # one socket read per call: the deadline is checked between them
    connection = environ.get("werkzeug.socket")
    before = connection.gettimeout() if connection is not None else None
    ends = time.monotonic() + deadline
    try:
        while len(data) < want:
            left = ends - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if connection is not None:
                connection.settimeout(left)
            chunk = read(want - len(data))
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        raise RequestTimeout(f"This request's body came too slowly (over {deadline:g} s): nothing was done.") from None
    except (OSError, ValueError):
        raise BadRequest("This request's body was cut short or malformed: nothing was done.") from None
    finally:
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.settimeout(before)
    if len(data) > MAX_BODY:
        raise RequestEntityTooLarge()
    if not chunked and len(data) < want:
        raise BadRequest("This request's body was cut short or malformed: nothing was done.")
    environ["wsgi.input"] = io.BytesIO(bytes(data))
    environ["CONTENT_LENGTH"] = str(len(data))
    environ.pop("wsgi.input_terminated", None)
    environ.pop("HTTP_TRANSFER_ENCODING", None)  # else werkzeug takes the body for chunked and reads it as empty


def _redirect(location: str) -> Response:
    response = Response("", status=303)
    response.headers["Location"] = location
    return response


def _secure(response: Response) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers.setdefault("Referrer-Policy", "same-origin")
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"


# --- serving ------------------------------------------------------------------------------------------------------

class _QuietHandler(ConnectionHandler):
    """werkzeug's request log without the query string (``?token=`` must not reach a log), and without a traceback
    for a request that never got as far as a path (a request line over 64 KB is a 414, one line)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = (getattr(self, "path", None) or "-").split("?", 1)[0]
        log.info("%s %s %s", getattr(self, "command", None) or "-", printable(path[:200]), code)

    def log_error(self, format: str, *args: Any) -> None:
        # http.server's own errors (a malformed or overlong request line, a TLS failure) quote the request line, which
        # may hold ?token=: the status is in the request's log line already.
        log.debug("review page: a request was refused before the app saw it")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


def log_requests(stream: Any = None) -> None:
    """One line per request on stderr (method, path, status): what an operator watching the page's terminal sees."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here rather than by werkzeug, which prints and exits the process on a taken port:
    the CLI turns the error into its one line instead."""
    try:
        family = select_address_family(host, port)  # the family werkzeug gives the socket it wraps
        _, _, _, _, address = socket.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)[0]
        listening = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {printable(host)}: {exc.strerror or exc}", setting="--host",
                                 hint="give an address of this machine, e.g. 127.0.0.1") from None
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
        listening.listen(128)
    except OSError as exc:  # the port is taken, the address is not this machine's
        listening.close()
        raise ConfigurationError(f"cannot listen on {printable(host)} port {port}: {exc.strerror or exc}",
                                 setting="--port", hint="pick another --port (0 picks a free one) or --host") from None
    return listening


@dataclass
class RunningPage:
    """A started review page: its server (``serve_forever`` / ``shutdown``), its app and the address to open."""

    server: BaseWSGIServer
    app: ReviewApp
    url: str

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.server.serve_forever, name="cvops-review-page", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start(blob_service: Any, config: Any, options: ServeOptions, *, api: Any = None,
          limits: Limits | None = None) -> RunningPage:
    """Bind the page's socket (port 0: a free one) and build its app. Without a token, the page answers only to
    loopback ``Host`` names of the bound port (a DNS-rebinding page is refused); with one, the token guards it.
    ``limits``: the per-connection deadlines and the connection cap (:class:`pipelines.review.server.Limits`)."""
    if options.token is not None:
        register_secret(options.token)  # a log line or error that echoes it is redacted
    app = ReviewApp(blob_service, config, reviewer=options.reviewer, token=options.token, api=api)
    if app._access is not None:
        register_secret(app._access)  # the cookie is a credential too
    context = tls_context(options.tls_cert, options.tls_key) if options.tls_cert and options.tls_key else None
    listening = _listen(options.host, options.port)
    try:
        server = PageServer(options.host, options.port, app, handler=_QuietHandler, fd=listening.fileno(),
                            ssl_context=context, limits=limits or Limits())
    finally:
        listening.close()  # the server holds its own duplicate
    port = server.port
    app.port, app.body_timeout = port, server.limits.body_timeout
    if options.token is None:
        app.allowed_hosts = loopback_hosts(port)
    host = f"[{options.host}]" if ":" in options.host else options.host
    return RunningPage(server, app, f"{'https' if context else 'http'}://{host}:{port}/")
