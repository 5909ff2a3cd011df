"""Where things are written: destination containers and prefixes, copy names, and the key of a result record.

Why keyed by name + ETag: the blob trigger delivers at least once, and a blob overwritten under the same name is a
new image. Every write derived from one (name, ETag) pair goes to the same blob names, so a duplicate delivery or a
rerun after a crash writes the same places (and finds the record already there) instead of adding a second outcome,
while a new ETag gets a record of its own.

Why copy names are escaped: a blob name is 1-1,024 characters of any Unicode, and ``/`` is only a virtual separator,
so ``a//b``, ``/a``, ``a/`` and ``a`` are four different blobs; ``x.jpg.cvops.json`` is a legal image name too. A copy
named by plain concatenation would merge them (one copy lost) or land on another image's sidecar. Names are therefore
escaped percent-style, only where needed (``photos/a.jpg`` stays ``photos/a.jpg``):

* ``%`` itself, ``\\`` (Azure turns it into ``/``), control characters, private-use and non-characters become ``%XX``
  (UTF-8 bytes, upper-case hex);
* a ``/`` that would make an empty path segment (leading, trailing or repeated) becomes ``%2F``;
* a ``.`` that ends a path segment or the name becomes ``%2E`` (Azure advises against names and segments ending in a
  dot, and HTTP stacks collapse ``.``/``..`` segments);
* a name ending in the sidecar suffix ``.cvops.json`` gets that suffix's first dot escaped, so no copy name ever ends
  in the suffix and every sidecar (a copy name + the suffix) is disjoint from every copy;
* beyond 254 path segments (Azure's limit), the deepest separators become ``%2F``.

The escaped text never contains ``%`` other than in ``%XX``, so ``%`` followed by a letter is free for two markers:
``%v<16 hex>`` (a version's own copy name, when another version of the blob already holds the plain one) and
``%h<32 hex>`` (a name shortened to fit 1,024 characters: a readable prefix, then the SHA-256 of the full name). The
full name is always in the record. :func:`decode` undoes all of it; the tests check that every destination decodes
back to its record's name and that no two names, tags or versions share a destination.

Escaping makes the names the app *writes* safe; a name the app is *given* with a ``.`` or ``..`` segment cannot be
read safely at all (a request by it reaches another blob): :func:`unaddressable` says so, and every trigger asks it
before reading (:func:`functions.handler.refuse_unaddressable`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

from cvops.errors import ConfigurationError
from functions import routes

__all__ = ["MAX_NAME_LENGTH", "MAX_SEGMENTS", "SIDECAR_SUFFIX", "Decoded", "Location", "azure_length", "check_disjoint",
           "copy_name", "decode", "escape_name", "matches", "printable", "record_key", "result_blob_name",
           "sidecar_name", "tag_segment", "unaddressable", "unescape", "versioned_copy_name"]

_CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
SIDECAR_SUFFIX = ".cvops.json"
MAX_NAME_LENGTH = 1024
"""Azure's limit on a blob name, counted in UTF-16 code units of the unencoded name (an emoji counts 2)."""
MAX_SEGMENTS = 254
"""Azure's limit on the path segments of a blob name (in an account without hierarchical namespace)."""
MAX_TAG_SEGMENT = 128
"""A longer tag's folder is shortened (prefix + hash), so a long tag cannot eat a name's room."""
MAX_PREFIX = 256
"""Longest accepted ``container/prefix`` prefix: with the tag cap, a name always keeps room for its shortened form."""
_MAX_PREFIX_SEGMENTS = 16
VERSION_MARK, VERSION_LENGTH = "%v", 16
DIGEST_MARK, DIGEST_LENGTH = "%h", 32
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,8}$")
_VERSION = re.compile(f"[0-9a-f]{{{VERSION_LENGTH}}}")
_TAIL_ROOM = len(DIGEST_MARK) + DIGEST_LENGTH + len(VERSION_MARK) + VERSION_LENGTH + 9


def azure_length(name: str) -> int:
    """A name's length as Azure counts it: UTF-16 code units of the name itself, not of its URL encoding."""
    return len(name.encode("utf-16-le", "surrogatepass")) // 2


def _must_escape(char: str) -> bool:
    """Characters that cannot appear (or do not survive) in an Azure blob URL, plus ``%`` and ``\\``."""
    if char in "%\\":
        return True
    code = ord(char)
    if 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE:  # Unicode non-characters
        return True
    # Cc: C0/C1 controls and DEL; Co: private use; Cs: lone surrogates. All three sets are fixed by Unicode's
    # stability policy, so a name escapes the same way whatever Python's Unicode version.
    return unicodedata.category(char) in ("Cc", "Co", "Cs")


def _pct(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))


def _escape_chunks(name: str, max_segments: int) -> list[str]:
    """One output chunk per character of ``name`` (so a prefix of chunks decodes to a prefix of the name)."""
    if not name:
        raise ValueError("a blob name has at least one character")
    if max_segments < 1:
        raise ValueError("no path segment left for the name")
    last = len(name) - 1
    chunks: list[str] = []
    for i, char in enumerate(name):
        if char == "/":
            literal = 0 < i < last and name[i - 1] != "/" and name[i + 1] != "/"
            chunks.append("/" if literal else "%2F")
        elif char == "." and (i == last or name[i + 1] == "/"):
            chunks.append("%2E")
        elif _must_escape(char):
            chunks.append(_pct(char))
        else:
            chunks.append(char)
    separators = [i for i, chunk in enumerate(chunks) if chunk == "/"]
    excess = len(separators) + 1 - max_segments
    for i in separators[len(separators) - excess:] if excess > 0 else ():
        chunks[i] = "%2F"  # fold the deepest folders: the top ones stay browsable
    if "".join(chunks[-len(SIDECAR_SUFFIX):]) == SIDECAR_SUFFIX:
        chunks[-len(SIDECAR_SUFFIX)] = "%2E"
    return chunks


def escape_name(name: str, max_segments: int = MAX_SEGMENTS) -> str:
    """``name`` as a valid, injective blob-name tail (see the module docstring); ordinary names are unchanged."""
    return "".join(_escape_chunks(name, max_segments))


def unescape(text: str) -> str:
    """The inverse of :func:`escape_name` and :func:`tag_segment` (without their markers)."""
    return unquote(text, errors="surrogatepass")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:DIGEST_LENGTH]


def _cut(chunks: list[str], units: int) -> str:
    """The longest run of whole chunks from the start that fits in ``units`` UTF-16 code units."""
    out: list[str] = []
    used = 0
    for chunk in chunks:
        width = azure_length(chunk)
        if used + width > units:
            break
        out.append(chunk)
        used += width
    return "".join(out)


def _extension(text: str) -> str:
    """``.jpg`` of ``a/b.jpg`` (1-8 ASCII letters or digits after a dot that does not start the last segment)."""
    segment = text.rsplit("/", 1)[-1]
    match = _EXTENSION.search(segment)
    return match.group(0) if match and match.start() > 0 else ""


def tag_segment(tag: str) -> str:
    """A tag as exactly one path segment, distinct for distinct tags (``a/b`` and ``a_b`` stay apart)."""
    if not tag:
        raise ValueError("a tag name has at least one character")
    text = "".join("%2F" if c == "/" else _pct(c) if _must_escape(c) else c for c in tag)
    if text.endswith("."):
        text = text[:-1] + "%2E"
    if azure_length(text) <= MAX_TAG_SEGMENT:
        return text
    chunks = ["%2F" if c == "/" else _pct(c) if _must_escape(c) else c for c in tag]
    return _cut(chunks, MAX_TAG_SEGMENT - len(DIGEST_MARK) - DIGEST_LENGTH) + DIGEST_MARK + _digest(tag)


def _body(name: str, head: str, version: str | None) -> str:
    """The part of a copy name after ``head`` (prefix and tag folder): escaped, versioned, and shortened so that the
    whole copy name *and* its sidecar's stay within 1,024 characters and 254 segments."""
    if version is not None and not _VERSION.fullmatch(version):
        raise ValueError(f"a version mark is {VERSION_LENGTH} lower-case hex digits")
    budget = MAX_NAME_LENGTH - azure_length(head) - len(SIDECAR_SUFFIX)
    if budget < _TAIL_ROOM:
        raise ValueError(f"the destination prefix {head!r} leaves no room for a blob name")
    chunks = _escape_chunks(name, MAX_SEGMENTS - head.count("/"))
    body = "".join(chunks)
    if version is not None:
        extension = _extension(body)
        body = body[:len(body) - len(extension)] + VERSION_MARK + version + extension
    if azure_length(body) <= budget:
        return body
    tail = DIGEST_MARK + _digest(name) + (VERSION_MARK + version if version else "") + _extension(name)
    return _cut(chunks, budget - len(tail)) + tail


@dataclass(frozen=True)
class Location:
    """A container and an optional prefix inside it, from a setting such as ``review`` or ``outputs/review``."""

    container: str
    prefix: str = ""

    @classmethod
    def parse(cls, value: str, setting: str) -> Location:
        """``container[/prefix]``; a ConfigurationError naming ``setting`` when the container name is not valid or
        the prefix could not safely head every copy name (empty segments, a segment ending in a dot, ``%``, ``\\``,
        control characters, more than 256 characters or 16 segments)."""
        container, _, prefix = value.strip().strip("/").partition("/")
        if not _CONTAINER.match(container):
            raise ConfigurationError(
                f"{setting}={value!r}: {container!r} is not a valid blob container name", setting=setting,
                hint="use 3-63 lowercase letters, digits and single hyphens, optionally followed by /prefix")
        prefix = prefix.strip("/")
        segments = prefix.split("/") if prefix else []
        if (any(not s or s.endswith(".") for s in segments) or any(_must_escape(c) for c in prefix)
                or azure_length(prefix) >= MAX_PREFIX or len(segments) > _MAX_PREFIX_SEGMENTS):
            raise ConfigurationError(
                f"{setting}={value!r}: the prefix {prefix!r} cannot head blob names", setting=setting,
                hint="use at most 16 non-empty folders, 255 characters, none ending in '.', without '%' or '\\'")
        return cls(container, f"{prefix}/" if prefix else "")

    def blob(self, *parts: str) -> str:
        return self.prefix + "/".join(p.strip("/") for p in parts if p)

    def __str__(self) -> str:
        return f"{self.container}/{self.prefix}" if self.prefix else self.container


def check_disjoint(locations: Mapping[str, Location], *, tagged: frozenset[str] = routes.TAGGED,
                   shareable: frozenset[str] = routes.SHAREABLE) -> None:
    """Refuse output locations whose names could meet: one inside another in the same container (``out`` and
    ``out/review``), or a tagged location (whose first folder is any tag) or the results sharing a place with any other.

    Untagged outcomes may share one exact location (their names are one escaped name each, so they stay distinct).
    ``locations`` maps a key of :mod:`functions.routes` such as ``review`` to its Location; the error names the
    key's setting (``CVOPS_REVIEW_CONTAINER``).
    """
    items = list(locations.items())
    for i, (first, a) in enumerate(items):
        for second, b in items[i + 1:]:
            if a.container != b.container or not (a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix)):
                continue
            if a.prefix == b.prefix and first in shareable and second in shareable:
                continue
            setting = routes.BY_KEY[second].setting
            raise ConfigurationError(
                f"app setting {setting} ({b}) overlaps {routes.BY_KEY[first].setting} ({a}): a copy of one could "
                f"take the name of the other{' (its first folder is a tag)' if {first, second} & tagged else ''}",
                setting=setting, hint="give each output its own container, or prefixes that do not contain each other")


def copy_name(location: Location, name: str, tag: str | None = None, *, version: str | None = None) -> str:
    """Where the routed copy of ``name`` goes: ``<prefix><tag>/<escaped name>`` for accepted tags,
    ``<prefix><escaped name>`` else; ``version`` (16 hex digits) gives a version's own name when the plain one is held
    by another version. Always within 1,024 characters and 254 segments, sidecar included."""
    head = location.prefix + (tag_segment(tag) + "/" if tag is not None else "")
    return head + _body(name, head, version)


def versioned_copy_name(copy: str, name: str, version: str) -> str:
    """The name for ``version`` of blob ``name`` when ``copy`` (a name from :func:`copy_name`) is held by another
    version: same folder, ``%v<version>`` before the extension. Found from ``copy`` alone, so a rerun after a change of
    settings still computes the same name."""
    # The head is a location prefix (at most 16 folders, see Location.parse) and a tag folder: 18 candidates at most.
    starts = [0, *[i + 1 for i, char in enumerate(copy) if char == "/"][:_MAX_PREFIX_SEGMENTS + 1]]
    for start in starts:
        head = copy[:start]
        if head + _body(name, head, None) == copy:
            return head + _body(name, head, version)
    raise ValueError(f"{printable(copy)} is not a copy name of {printable(name)}")


def sidecar_name(copy: str) -> str:
    """The result record beside a copy (a suffix that image listings and training lint can skip). Copy names never
    end in the suffix, so a sidecar can never be another image's copy."""
    return copy + SIDECAR_SUFFIX


@dataclass(frozen=True)
class Decoded:
    """What a destination blob name says: the tag, the source name (or, when shortened, its prefix and digest), the
    version mark, and whether it is a sidecar."""

    tag: str | None
    tag_digest: str | None
    name: str | None
    name_prefix: str
    digest: str | None
    version: str | None
    sidecar: bool


def _split_marks(text: str) -> tuple[str, str | None, str | None]:
    """(text without marks, digest, version): marks never occur in escaped text, so each is found unambiguously."""
    version = digest = None
    at = text.find(VERSION_MARK)
    if at >= 0:
        version = text[at + len(VERSION_MARK):at + len(VERSION_MARK) + VERSION_LENGTH]
        text = text[:at] + text[at + len(VERSION_MARK) + VERSION_LENGTH:]
    at = text.find(DIGEST_MARK)
    if at >= 0:
        digest = text[at + len(DIGEST_MARK):at + len(DIGEST_MARK) + DIGEST_LENGTH]
        text = text[:at]
    return text, digest, version


def decode(location: Location, blob: str, *, tagged: bool) -> Decoded:
    """Undo :func:`copy_name` (and :func:`sidecar_name`): pure, so a destination can be traced to its record's name."""
    if not blob.startswith(location.prefix):
        raise ValueError(f"{printable(blob)} is not under {location}")
    rest = blob[len(location.prefix):]
    sidecar = rest.endswith(SIDECAR_SUFFIX)
    if sidecar:
        rest = rest[:-len(SIDECAR_SUFFIX)]
    tag = tag_digest = None
    if tagged:
        segment, _, rest = rest.partition("/")
        segment, tag_digest, _ = _split_marks(segment)
        tag = None if tag_digest else unescape(segment)
    rest, digest, version = _split_marks(rest)
    shown = unescape(rest)
    return Decoded(tag=tag, tag_digest=tag_digest, name=None if digest else shown, name_prefix=shown, digest=digest,
                   version=version, sidecar=sidecar)


def matches(decoded: Decoded, name: str) -> bool:
    """True when ``decoded`` (from :func:`decode`) names blob ``name``: equal, or, when shortened, same prefix and hash."""
    if decoded.digest is None:
        return decoded.name == name
    return name.startswith(decoded.name_prefix) and decoded.digest == _digest(name)


def printable(text: str) -> str:
    """``text`` for a log line or message: as it is when every character is printable, else quoted and escaped like a
    Python literal, so a newline, a control or a bidi-override character in a blob name cannot forge or hide a line."""
    return text if text.isprintable() else repr(text)


_DECODE_ROUNDS = 4
"""Percent-decodings tried per segment: a proxy or gateway that decodes once more than the SDK encodes (``%252e``)
is covered up to three layers deep; a deeper nesting is still refused, as a segment that is not plain text."""


def _dot_segment(segment: str) -> bool:
    """Whether a path segment is, or could become after decoding along the way, ``.`` or ``..``.

    Decoded as the HTTP stacks on the way might: percent-escapes (``%2e``, ``%2E``, ``.%2e``, also nested ``%252e``)
    and IIS's ``%u002e``, then Unicode compatibility forms (a full-width ``\uff0e`` is NFKC ``.``)."""
    text = segment
    for _ in range(_DECODE_ROUNDS):
        if text in (".", ".."):
            return True
        decoded = unquote(re.sub(r"%u([0-9A-Fa-f]{4})", lambda m: chr(int(m.group(1), 16)), text),
                          errors="surrogatepass")
        decoded = unicodedata.normalize("NFKC", decoded)
        if decoded == text:
            return False
        text = decoded
    return text in (".", "..") or "%" in text


def unaddressable(name: str) -> str | None:
    """Why the app must not address blob ``name`` by its URL (a message), or None when it may.

    A ``.`` or ``..`` path segment is resolved by URL normalisation before the request reaches the service
    (urllib3, which requests and azure-core use, removes dot segments; so do proxies and .NET's ``Uri``), so
    ``incoming/a/../b.jpg`` is requested as ``incoming/b.jpg``: a read, copy or delete by that name acts on
    *another* blob. Segments are split at ``/`` and at ``\\`` (Azure stores a ``\\`` as ``/``), and each is
    checked in every encoding some layer might decode (:func:`_dot_segment`). Empty segments are not dot segments:
    ``a//b`` is a blob of its own and is addressed exactly. Pure; the one rule every trigger applies.
    """
    for segment in re.split(r"[/\\]", name):
        if segment and _dot_segment(segment):
            return (f"blob name {printable(name[:300])} has a path segment {printable(segment[:40])} that URL "
                    "normalisation would resolve as '.' or '..', so a request by this name would reach another "
                    "blob; it was not read, copied or deleted (rename it without '.' or '..' folders)")
    return None


def record_key(name: str, etag: str) -> str:
    """A stable, URL-safe id for one version of one blob (32 hex digits of SHA-256 over name and ETag)."""
    return hashlib.sha256(f"{name}\n{etag.strip(chr(34))}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


def result_blob_name(results: Location, name: str, etag: str, arrived: datetime) -> str:
    """The result record's blob: one small JSON Lines file per (name, ETag), partitioned by the day the blob arrived.

    The date is the blob's own Last-Modified, not the time of processing, so a rerun computes the same name.
    ``date=YYYY-MM-DD`` is the Hive-style partition Spark, Synapse serverless SQL and Power BI folder queries read.
    """
    # In UTC: the host's metadata and the SDK may give the same instant with different offsets, and one version must
    # always map to one record name.
    return results.blob(f"date={arrived.astimezone(UTC):%Y-%m-%d}", f"{record_key(name, etag)}.jsonl")
