"""Who may use the review page: the token's strength, the slowdown after wrong tokens, the cookies and the CSRF tokens.

Pure rules and two small thread-safe tables, so each is tested without a socket. Why each one:

- **A user-chosen token must be strong** (:func:`token_problem`): the token is the only lock on a remote page, and
  ``--token aaaaaaaaaaaaaaaa`` passed the old length rule. The rule is an estimate anyone can check by hand (length x
  log2 of the character classes used, at least 128 bits, with enough different characters), said in full in the error.
- **Wrong tokens are slowed down per client address** (:class:`GuessThrottle`): without it one client tried 433 tokens
  a second. A global limit would let anyone lock every reviewer out; per address, the right token from any other
  address is never slowed, and a reviewer sharing the guesser's address waits at most :data:`GuessThrottle.CAP`
  seconds once the guessing stops. The cookie a browser keeps is not the token but an HMAC of it (256 bits, nothing to
  guess), so a signed-in reviewer is never throttled at all, and the token's value never sits in a cookie jar.
- **CSRF tokens are stateless** (:func:`csrf_token`): an HMAC of the browser's session cookie with a per-process secret.
  The old server kept 200 sessions, one per cookie-less request, so 201 requests from anyone evicted the reviewer's
  session and their next key press was refused. Nothing is stored per request now; a forged form still needs the
  secret, and a form from before a restart is refused (the page then says so and offers the queue).
- **Cookie names carry the server's port** (:func:`cookie_name`), with ``__Host-`` over HTTPS: cookies ignore ports, so
  two pages on one host (two tunnels, a colleague's server) would otherwise overwrite or receive each other's cookies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import math
import re
import secrets
import string
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable

__all__ = ["MIN_TOKEN_BITS", "TOKEN_RULE", "Flashes", "GuessThrottle", "access_cookie_value", "client_key",
           "cookie_name", "csrf_token", "new_session_id", "session_id_valid", "token_bits", "token_problem"]

MIN_TOKEN_BITS = 128
_FORBIDDEN = set(' ;,"\\')
_SYMBOLS = "".join(c for c in string.punctuation if c not in _FORBIDDEN)
_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits, _SYMBOLS)
MIN_DISTINCT = 10
TOKEN_RULE = (f"at least {MIN_TOKEN_BITS} bits, counted as length x log2(size of the character classes used: 26 "
              f"lower, 26 upper, 10 digits, {len(_SYMBOLS)} symbols), e.g. 22 characters mixing lower, upper and "
              f"digits or 25 of lower and digits; {MIN_DISTINCT}+ different characters, none over a quarter of it; "
              "printable ASCII without spaces, quotes, commas, semicolons, backslashes")
"""The rule :func:`token_problem` applies, as the error states it."""

_SESSION_ID = re.compile(r"\A[A-Za-z0-9_-]{43}\Z")


def token_bits(token: str) -> float:
    """The estimated strength: length x log2(the summed sizes of the character classes the token uses)."""
    pool = sum(len(chars) for chars in _CLASSES if any(c in chars for c in token))
    return len(token) * math.log2(pool) if pool > 1 else 0.0


def token_problem(token: str) -> str | None:
    """What makes ``token`` unfit for the page (never quoting it), or None. The whole rule is :data:`TOKEN_RULE`."""
    if not token.isascii() or not token.isprintable() or any(c in _FORBIDDEN for c in token):
        return "it has a character outside printable ASCII, or a space, quote, comma, semicolon or backslash"
    bits = token_bits(token)
    if bits < MIN_TOKEN_BITS:
        return f"its {len(token)} characters count as {bits:.0f} bits"
    distinct = Counter(token)
    if len(distinct) < MIN_DISTINCT:
        return f"it has only {len(distinct)} different characters"
    if max(distinct.values()) * 4 > len(token):
        return "one character makes up more than a quarter of it"
    return None


def access_cookie_value(token: str) -> str:
    """What the browser keeps instead of the token: an HMAC of it (the same after a restart with the same token, so a
    reviewer stays signed in; 256 bits, so it is not worth guessing; and it does not give the token back)."""
    return hmac.new(token.encode("utf-8"), b"cvops review access cookie", hashlib.sha256).hexdigest()


def csrf_token(secret: bytes, session_id: str) -> str:
    """The CSRF token of a session: an HMAC of its cookie with the server's secret (stored nowhere)."""
    digest = hmac.new(secret, b"csrf:" + session_id.encode("ascii", "replace"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def session_id_valid(value: str | None) -> bool:
    """The shape :func:`new_session_id` makes (anything else is replaced, never used as a key)."""
    return bool(value) and _SESSION_ID.match(value or "") is not None


def cookie_name(kind: str, port: int | None, *, https: bool) -> str:
    """``cvops_review_<kind>_<port>``; over HTTPS with the ``__Host-`` prefix (the browser then insists on Secure,
    Path=/ and no Domain, so no other host or plain-HTTP page can plant it)."""
    name = f"cvops_review_{kind}" + (f"_{port}" if port else "")
    return f"__Host-{name}" if https else name


def client_key(address: str) -> str:
    """The unit a guess is counted against: the IPv4 address, or the IPv6 /64 (one machine usually holds a whole
    /64, so counting single IPv6 addresses would give a guesser 2^64 fresh starts)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class GuessThrottle:
    """Wrong tokens per client (:func:`client_key`): the first :data:`FREE` are free (typos), then each one makes
    the client wait 0.5 s, 1 s, 2 s, ... up to :data:`CAP` seconds before its next token is even compared. A right
    token clears the count; a client silent for :data:`FORGET` seconds is forgotten; at most :data:`MEMORY` clients
    are remembered (the oldest dropped)."""

    FREE = 3
    BASE = 0.5
    CAP = 30.0
    FORGET = 600.0
    MEMORY = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._clients: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (wrong tries, may try again at)

    @classmethod
    def delay(cls, wrong: int) -> float:
        """Seconds to wait after the ``wrong``-th wrong token in a row."""
        if wrong <= cls.FREE:
            return 0.0
        return min(cls.BASE * 2 ** (wrong - cls.FREE - 1), cls.CAP)

    def wait(self, address: str) -> float:
        """Seconds ``address`` must still wait before its next token is compared (0: it may try now)."""
        key, now = client_key(address), self._clock()
        with self._lock:
            wrong, until = self._clients.get(key, (0, 0.0))
            if wrong and now - until > self.FORGET:
                del self._clients[key]
                return 0.0
            return max(0.0, until - now)

    def failed(self, address: str) -> float:
        """Count a wrong token; returns the wait it earned."""
        key, now = client_key(address), self._clock()
        with self._lock:
            wrong = self._clients.pop(key, (0, 0.0))[0] + 1
            pause = self.delay(wrong)
            self._clients[key] = (wrong, now + pause)
            while len(self._clients) > self.MEMORY:
                self._clients.popitem(last=False)
        return pause

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._clients.pop(client_key(address), None)


class Flashes:
    """The messages waiting for a browser's next page, by session cookie. Only a message is stored (a decision's
    outcome, "that image was decided by ..."), and at most :data:`LIMIT` browsers' worth: losing one to a flood costs
    a line of text, never a decision or a form."""

    LIMIT = 1000

    def __init__(self, limit: int = LIMIT) -> None:
        self._items: OrderedDict[str, list[tuple[str, str]]] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def take(self, session_id: str) -> list[tuple[str, str]]:
        with self._lock:
            return self._items.pop(session_id, [])

    def keep(self, session_id: str, messages: list[tuple[str, str]]) -> None:
        if not messages:
            return
        with self._lock:
            self._items[session_id] = [*self._items.pop(session_id, []), *messages][-10:]
            while len(self._items) > self._limit:
                self._items.popitem(last=False)


class LastDecisions:
    """The last decision each browser made (key, monotonic time), by session cookie, so its page can offer to undo
    it. Bounded like :class:`Flashes`: a flood of new cookies can push an entry out, which only hides the Undo button
    (the ``u`` key and the storage check still decide whether an undo is allowed)."""

    LIMIT = 1000

    def __init__(self, limit: int = LIMIT) -> None:
        self._items: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def get(self, session_id: str) -> tuple[str, float] | None:
        with self._lock:
            return self._items.get(session_id)

    def set(self, session_id: str, value: tuple[str, float] | None) -> None:
        with self._lock:
            self._items.pop(session_id, None)
            if value is not None:
                self._items[session_id] = value
                while len(self._items) > self._limit:
                    self._items.popitem(last=False)
