"""List a container even when a blob name cannot be listed: the names that can are all listed, and a warning names
where the others are.

Why: a blob name may hold characters XML 1.0 cannot carry (C0 controls but tab, LF and CR; lone surrogates; U+FFFE
and U+FFFF). Azure answers such a name ``Encoded="true"`` and the SDK decodes it; Azurite (3.35) answers the whole
listing page with a bare HTTP 500. One such upload made `cvops function run-local` fail every listing and route
nothing at all. Here a page that fails is listed again one name at a time from the last good name, and the
unlistable name is stepped over by searching for the smallest marker after it (Azurite's marker is the last name
returned, compared as a string, exclusive; a marker must itself be valid XML, as the answer echoes it). The search
only asks "does the listing after marker t fail?", true exactly for t before the unlistable run when no listable
name lies in between, so it converges on the first valid string past the unlistable name(s): every name it steps
over has an XML-invalid character at the place the search found, so no listable name is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from azure.core.exceptions import DecodeError, HttpResponseError

__all__ = ["PAGE", "list_blobs"]

log = logging.getLogger("cvops.run_local")

PAGE = 5000
# The markers' alphabet: XML 1.0's characters in the Basic Multilingual Plane, inclusive ranges. Azurite compares
# names as JavaScript strings (UTF-16 code units), so a character above U+FFFF sorts between U+D7FF and U+E000; the
# search keeps to the BMP, where code point and UTF-16 order agree. (A listable name whose character at the place the
# search decides is above U+FFFF is stepped over with the unlistable ones: a limit of this fallback; the warning
# names the range stepped over.)
_VALID = ((0x9, 0xA), (0xD, 0xD), (0x20, 0xD7FF), (0xE000, 0xFFFD))
_COUNT = sum(last - first + 1 for first, last in _VALID)
_TOP = 0xFFFD


def _code(rank: int) -> int:
    """The ``rank``-th code point XML allows (0-based)."""
    for first, last in _VALID:
        if rank <= last - first:
            return first + rank
        rank -= last - first + 1
    raise IndexError(rank)


def _rank(code: int) -> int:
    """The rank of the smallest code point XML allows that is >= ``code`` (_COUNT when none)."""
    rank = 0
    for first, last in _VALID:
        if code <= last:
            return rank + max(code - first, 0)
        rank += last - first + 1
    return _COUNT


def _unlistable(exc: Exception) -> bool:
    """A listing answer that an unlistable name would cause: a 500 (Azurite) or a body the SDK could not read."""
    return isinstance(exc, DecodeError) or (isinstance(exc, HttpResponseError) and exc.status_code == 500)


def _after(client: Any, marker: str | None) -> Any | None:
    """The first blob after ``marker`` (exclusive), None at the end; raises when that blob cannot be listed."""
    page = next(client.list_blobs(results_per_page=1).by_page(continuation_token=marker or None), [])
    return next(iter(page), None)


def _fails(client: Any, marker: str) -> bool:
    """Whether the name after ``marker`` cannot be listed: before the unlistable run, true; past it, false."""
    try:
        _after(client, marker)
    except Exception as exc:
        if not _unlistable(exc):
            raise
        return True
    return False


def _step_over(client: Any, good: str | None) -> str | None:
    """The smallest valid marker past the unlistable name(s) that follow ``good`` (see the module docstring).

    The unlistable name ``b`` is found one character at a time, as far as its first character XML cannot carry:
    first where it leaves ``good`` (the deepest sibling ``good[:j] + (next char above good[j])`` already past it),
    then each further character by bisection over the valid code points. None when no valid marker lies past it
    (the name sorts above every character the search can write): nothing after it can be listed then."""
    prefix, low = "", 0
    if good:
        siblings = [good[:j] + chr(_code(_rank(ord(good[j]) + 1))) if _rank(ord(good[j]) + 1) < _COUNT else None
                    for j in range(len(good))]
        j = next((j for j in range(len(good) - 1, -1, -1) if siblings[j] is None or not _fails(client, siblings[j])),
                 -1)
        if j < 0:  # b's first character is above good's
            prefix, low = "", _rank(ord(good[0]) + 1)
        elif _fails(client, good[:j + 1] + chr(_TOP)):  # b[j] lies between good[j] and its sibling: not valid
            return siblings[j]
        else:  # b goes on with good[:j + 1], past the deeper sibling
            prefix, low = good[:j + 1], _rank(ord(good[j + 1]) + 1) if j + 1 < len(good) else 0
    while True:
        if low >= _COUNT or not _fails(client, prefix + chr(_code(low))):
            return prefix + chr(_code(min(low, _COUNT - 1)))  # b's next character is invalid, below that one
        lo, hi = low, _COUNT - 1  # the largest rank whose marker is still before b
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _fails(client, prefix + chr(_code(mid))):
                lo = mid
            else:
                hi = mid - 1
        if _fails(client, prefix + chr(_code(lo)) + chr(_TOP)):  # b's next character is above lo, and invalid
            return prefix + chr(_code(min(lo + 1, _COUNT - 1)))
        prefix, low = prefix + chr(_code(lo)), 0  # b goes on with that character: one deeper


def list_blobs(client: Any) -> Iterator[Any]:
    """Every listable blob of the container ``client`` (a ContainerClient, best without retries), in name order;
    a warning for each unlistable run, naming the part of the name before its unlistable character."""
    marker: str | None = None
    while True:
        pages = client.list_blobs(results_per_page=PAGE).by_page(continuation_token=marker)
        try:
            for page in pages:
                for blob in page:
                    marker = blob.name
                    yield blob
            return
        except Exception as exc:
            if not _unlistable(exc):
                raise
        while True:  # one at a time from the last good name up to the one that cannot be listed
            try:
                blob = _after(client, marker)
            except Exception as exc:
                if not _unlistable(exc):
                    raise
                break
            if blob is None:
                return
            marker = blob.name
            yield blob
        resume = _step_over(client, marker)
        if resume is None:
            log.warning("the blob names after %s cannot be listed (the storage service failed on their characters); "
                        "they were skipped: rename them", repr(marker or ""))
            return
        log.warning("a blob name after %s cannot be listed (the storage service failed on its characters: a control "
                    "character?); blobs named after %s and before %s were skipped: rename them",
                    repr(marker or ""), repr(resume[:-1]), repr(resume))
        marker = resume
