"""Destination names are injective, valid in Azure and traceable back to their record, whatever the blob is called.

Blob names are 1-1,024 characters of any Unicode with ``/`` as a mere separator, so ``/a``, ``a``, ``a/`` and ``a//``
are four blobs, and ``x.jpg.cvops.json`` is a legal image name. Hypothesis generates hostile names and tags (Unicode,
``/`` runs, leading and trailing ``/``, sidecar-like suffixes, ``%`` and the naming markers, control characters, names
at the 1,024-unit limit, surrogate pairs that count twice) and checks every copy, versioned copy and sidecar name
against each other and against Microsoft's naming rules ("Naming and Referencing Containers, Blobs, and Metadata":
1-1,024 characters; at most 254 path segments; avoid names ending in ``.`` or ``/`` and segments ending in ``.``).
The reproductions of issue 9's collisions run end to end on Azurite through the registered blob trigger.

Counts: each property's examples are counted and printed at the end of the module (run with ``-s`` or read the
terminal summary), so the figures quoted in notes come from a run, not from the settings.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import unicodedata
from datetime import UTC, datetime

import pytest
from fn_helpers import scene
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvops.errors import ConfigurationError
from functions import naming
from functions.naming import (
    MAX_NAME_LENGTH,
    MAX_SEGMENTS,
    SIDECAR_SUFFIX,
    Location,
    azure_length,
    check_disjoint,
    copy_name,
    decode,
    escape_name,
    matches,
    sidecar_name,
    tag_segment,
    unescape,
    versioned_copy_name,
)

COUNTS: collections.Counter[str] = collections.Counter()
NAMES_CHECKED: collections.Counter[str] = collections.Counter()
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    """Print how many cases each property saw (the lead quotes these figures)."""
    yield
    report(request, "names properties (test_fn_names_injective)",
           [f"{name}: {count} cases, {NAMES_CHECKED[name]} destination names checked"
            for name, count in sorted(COUNTS.items())])


def report(request, title: str, lines: list[str]) -> None:
    """Write ``lines`` to the terminal past pytest's output capture (figures for the lead's note)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or not lines:
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line(f"\n{title}:")
        for line in lines:
            reporter.write_line(f"  {line}")


PIECES = ["/", "//", "///", ".", "..", "%", "%2F", "%25", "%v", "%h", "%v0123456789abcdef", SIDECAR_SUFFIX, ".cvops",
          ".json", "\\", "\n", "\r", "\t", "\x00", "\x7f", "\x85", "\u2028", "\u202e", " ", "é", "e\u0301", "😊",
          "\ue000", "\ufffe", "\uffff", "a", "b.jpg", ".jpg", "x.JPG", "date=2026-01-01", "~", "?", "#", "&"]
# Any Unicode except lone surrogates (a trigger's name is decoded from UTF-8, which cannot carry one).
ANY_CHAR = st.characters(exclude_categories=("Cs",))


def _limited(name: str) -> bool:
    return 1 <= azure_length(name) <= MAX_NAME_LENGTH


hostile_short = st.lists(st.one_of(st.sampled_from(PIECES), st.text(ANY_CHAR, min_size=1, max_size=6)),
                         min_size=1, max_size=12).map("".join)
hostile_long = st.builds(lambda fill, end, emoji: (fill * 1024)[:1024 - len(end) - 2 * emoji] + "😊" * emoji + end,
                         st.sampled_from(["a", "/", "a/", "%", "é", "ab.", "x//"]),
                         st.sampled_from(["", ".jpg", "/", ".", SIDECAR_SUFFIX, "%v"]),
                         st.integers(0, 3))
many_slashes = st.builds(lambda seg, n, end: "/".join([seg] * n) + end, st.sampled_from(["a", ".", "", "b."]),
                         st.integers(250, 300), st.sampled_from(["", "/x.jpg", "/"]))
blob_names = st.one_of(hostile_short, hostile_short, hostile_long, many_slashes).filter(_limited)
tags = st.one_of(st.sampled_from(["beach", "a/b", "a_b", "a%2Fb", "a\\b", ".", "..", "a.", "a", " a", "a ", "%h",
                                  "x" * 200, "x" * 199 + "y"]),
                 st.text(ANY_CHAR, min_size=1, max_size=40))
versions = st.text("0123456789abcdef", min_size=16, max_size=16)


def azure_problems(blob: str) -> list[str]:
    """What Microsoft's naming rules say against ``blob`` as a whole blob name (empty when it is fine)."""
    problems = []
    if not 1 <= azure_length(blob) <= MAX_NAME_LENGTH:
        problems.append(f"length {azure_length(blob)}")
    segments = blob.split("/")
    if len(segments) > MAX_SEGMENTS:
        problems.append(f"{len(segments)} segments")
    if blob.endswith((".", "/")):
        problems.append("ends in '.' or '/'")
    if any(not s for s in segments):
        problems.append("empty segment")
    if any(s.endswith(".") for s in segments):
        problems.append("segment ends in '.'")
    if "\\" in blob or any(unicodedata.category(c) in ("Cc", "Co", "Cs") for c in blob):
        problems.append("a character Azure refuses or rewrites")
    return problems


def _destinations(location: Location, name: str, tag: str | None, version: str) -> dict[str, tuple]:
    """Every name one (name, tag) pair can be written to: copy, version's own copy, and their sidecars."""
    plain = copy_name(location, name, tag)
    own = versioned_copy_name(plain, name, version)
    assert own == copy_name(location, name, tag, version=version)
    return {plain: (name, tag, None, False), own: (name, tag, version, False),
            sidecar_name(plain): (name, tag, None, True), sidecar_name(own): (name, tag, version, True)}


@settings(FAST, max_examples=200)
@given(names=st.lists(blob_names, min_size=1, max_size=6, unique=True),
       tag_list=st.lists(tags, min_size=1, max_size=3, unique=True), version=versions,
       prefix=st.sampled_from(["", "out/", "a/b/c/"]))
def test_copy_and_sidecar_names_are_distinct_valid_and_decode_to_their_name(names, tag_list, version, prefix):
    COUNTS["distinct_valid_decodable"] += 1
    # A tagged and an untagged location never overlap (the configuration refuses it: see the layout property).
    tagged, untagged = Location("accepted", prefix), Location("review", prefix)
    seen: dict[tuple[str, str], tuple] = {}
    for name in names:
        for tag in [*tag_list, None]:
            location = untagged if tag is None else tagged
            for blob, origin in _destinations(location, name, tag, version).items():
                where = (location.container, blob)
                assert seen.setdefault(where, origin) == origin, f"{where!r} is the destination of two blobs"
                assert not azure_problems(blob), (blob, azure_problems(blob))
                assert blob.endswith(SIDECAR_SUFFIX) == origin[3]  # copies never end like a sidecar
                decoded = decode(location, blob, tagged=tag is not None)
                assert matches(decoded, name) and decoded.sidecar == origin[3] and decoded.version == origin[2]
                assert decoded.tag == tag or (decoded.tag is None and decoded.tag_digest)
                NAMES_CHECKED["distinct_valid_decodable"] += 1


@FAST
@given(name=blob_names)
def test_escaping_round_trips_and_never_emits_a_marker(name):
    COUNTS["escape_round_trip"] += 1
    escaped = escape_name(name)
    assert unescape(escaped) == name
    assert naming.VERSION_MARK not in escaped and naming.DIGEST_MARK not in escaped
    assert not escaped.endswith(SIDECAR_SUFFIX)
    NAMES_CHECKED["escape_round_trip"] += 1


ordinary_segment = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=1, max_size=12)


@FAST
@given(segments=st.lists(ordinary_segment, min_size=1, max_size=5),
       extension=st.sampled_from(["", ".jpg", ".png", ".tar.gz"]))
def test_ordinary_names_are_kept_as_they_are(segments, extension):
    COUNTS["ordinary_unchanged"] += 1
    name = "/".join(segments) + extension
    assert copy_name(Location("accepted"), name, "beach") == f"beach/{name}"
    assert copy_name(Location("review"), name) == name
    NAMES_CHECKED["ordinary_unchanged"] += 2


@FAST
@given(tag_list=st.lists(tags, min_size=2, max_size=8, unique=True))
def test_distinct_tags_never_share_a_folder(tag_list):
    COUNTS["tags_distinct"] += 1
    segments = [tag_segment(t) for t in tag_list]
    assert len(set(segments)) == len(segments)
    for tag, segment in zip(tag_list, segments, strict=True):
        assert "/" not in segment and not segment.endswith(".") and azure_length(segment) <= naming.MAX_TAG_SEGMENT
        decoded = decode(Location("c"), f"{segment}/x.jpg", tagged=True)
        assert decoded.tag == tag or decoded.tag_digest
    NAMES_CHECKED["tags_distinct"] += len(segments)


LAYOUT = st.fixed_dictionaries({key: st.tuples(st.sampled_from(["out", "two", key, key]),
                                               st.sampled_from(["", "review", "review/x", "r", "beach"]))
                                for key in ("accepted", "review", "rejected", "quarantine", "results")})


@settings(max_examples=200, deadline=None)
@given(layout=LAYOUT, names=st.lists(blob_names, min_size=1, max_size=4, unique=True),
       tag_list=st.lists(st.sampled_from(["beach", "review", "x", "date=2026-01-01"]), min_size=1, max_size=2,
                         unique=True))
def test_a_layout_the_config_accepts_never_lets_two_outcomes_meet(layout, names, tag_list):
    """Outputs may share a container; the configuration check refuses exactly the layouts in which they could meet."""
    COUNTS["layouts"] += 1
    locations = {key: Location.parse(f"{c}/{p}" if p else c, f"CVOPS_{key.upper()}_CONTAINER")
                 for key, (c, p) in layout.items()}
    try:
        check_disjoint(locations)
    except ConfigurationError:
        COUNTS["layouts_refused"] += 1
        return
    written: dict[tuple[str, str], tuple] = {}
    for outcome in ("accepted", "review", "rejected", "quarantine"):
        location = locations[outcome]
        for name in names:
            for tag in tag_list if outcome == "accepted" else [None]:
                for blob in (copy_name(location, name, tag), sidecar_name(copy_name(location, name, tag))):
                    origin = (name, tag, outcome if outcome == "accepted" else "untagged")
                    assert written.setdefault((location.container, blob), origin) == origin
                    NAMES_CHECKED["layouts"] += 1
    results = locations["results"]
    record = naming.result_blob_name(results, "incoming/x.jpg", "0x1", datetime(2026, 1, 1, tzinfo=UTC))
    assert (results.container, record) not in written


def test_the_collisions_of_issue_9_are_distinct_names():
    location = Location("accepted")
    pairs = [("/lead.jpg", "lead.jpg"), ("dir/", "dir"), ("a//b", "a/b"), ("x.jpg.cvops.json", "x.jpg"),
             ("b\\c", "b/c"), ("end.", "end"), ("100%25.jpg", "100%.jpg")]
    for one, other in pairs:
        names = {copy_name(location, one, "city"), sidecar_name(copy_name(location, one, "city")),
                 copy_name(location, other, "city"), sidecar_name(copy_name(location, other, "city"))}
        assert len(names) == 4, (one, other)
    assert copy_name(location, "photos/a.jpg", "city") == "city/photos/a.jpg"


def test_names_at_the_limit_are_shortened_with_a_hash_and_stay_distinct():
    location = Location("accepted", "routed/")
    base = "n/" + "x" * (MAX_NAME_LENGTH - 6)
    long_names = [base + ".jpg", base + ".png", "😊" * 512, "😊" * 511 + "ab"]
    copies = [copy_name(location, n, "beach") for n in long_names]
    assert len(set(copies)) == len(copies)
    for name, copy in zip(long_names, copies, strict=True):
        assert azure_length(sidecar_name(copy)) <= MAX_NAME_LENGTH
        decoded = decode(location, copy, tagged=True)
        assert decoded.name is None and decoded.digest and matches(decoded, name)
    assert copies[0].endswith(".jpg")  # the extension survives, so tools still know the type


@pytest.mark.parametrize("value", ["out/a//b", "out/a./b", "out/a%b", "out/" + "p" * 300, "out/" + "/".join("p" * 17)])
def test_a_prefix_that_could_not_head_blob_names_is_refused(value):
    with pytest.raises(ConfigurationError, match="CVOPS_REVIEW_CONTAINER"):
        Location.parse(value, "CVOPS_REVIEW_CONTAINER")


@pytest.mark.parametrize("layout, refused", [
    ({"accepted": "out", "review": "out/review"}, "CVOPS_REVIEW_CONTAINER"),
    ({"accepted": "out/c", "results": "out/c"}, "CVOPS_RESULTS_CONTAINER"),
    ({"review": "out", "quarantine": "out/q"}, "CVOPS_QUARANTINE_CONTAINER"),
    ({"review": "out/r", "rejected": "out/r", "accepted": "out/c", "results": "res"}, None),
])
def test_overlapping_output_locations_are_refused_naming_the_setting(layout, refused):
    locations = {key: Location.parse(value, key) for key, value in layout.items()}
    if refused is None:
        check_disjoint(locations)
    else:
        with pytest.raises(ConfigurationError, match=refused):
            check_disjoint(locations)


# --- reproductions on Azurite, through the registered blob trigger -------------------------------------------------


def test_an_image_named_like_another_images_sidecar_leaves_that_sidecar_alone(function_env):
    """Issue 9: ``coll/x.jpg`` and ``coll/x.jpg.cvops.json`` (an image too) were routed onto one name: the image's
    sidecar held image bytes and every later delivery of x.jpg failed with UnicodeDecodeError until poisoned."""
    function_env.upload("coll/x.jpg", scene("beach", seed=51))
    function_env.upload("coll/x.jpg.cvops.json", scene("beach", seed=52))
    first = function_env.deliver("coll/x.jpg")
    second = function_env.deliver("coll/x.jpg.cvops.json")
    again = function_env.deliver("coll/x.jpg")  # a duplicate delivery reads x.jpg's sidecar
    assert again.duplicate and again.record == first.record
    written = [d.split("/", 1)[1] for o in (first, second) for d in o.record["destinations"]]
    assert len(set(written)) == 2
    expected = sorted(written + [sidecar_name(w) for w in written])
    assert function_env.names("accepted") == expected
    for outcome in (first, second):
        [destination] = outcome.record["destinations"]
        sidecar = json.loads(function_env.read("accepted", sidecar_name(destination.split("/", 1)[1])))
        assert sidecar["key"] == outcome.record["key"]


@pytest.mark.parametrize("one, other", [("/lead.jpg", "lead.jpg"), ("dir/", "dir"), ("a//b.jpg", "a/b.jpg")])
def test_names_that_differ_only_in_slashes_get_copies_of_their_own(function_env, one, other):
    """Issue 9: ``/lead.jpg`` and ``lead.jpg`` both became ``accepted/city/lead.jpg``; one copy was lost."""
    data = {one: scene("city", seed=61), other: scene("city", seed=62)}
    outcomes = {}
    for name, body in data.items():
        function_env.upload(name, body)
        outcomes[name] = function_env.deliver(name)
    copies = {name: o.record["destinations"][0].split("/", 1)[1] for name, o in outcomes.items()}
    assert copies[one] != copies[other]
    for name, copy in copies.items():
        assert function_env.read("accepted", copy) == data[name]
        location = Location(outcomes[name].record["destinations"][0].split("/", 1)[0])
        assert decode(location, copy, tagged=True).name == name == outcomes[name].record["blob"]["name"]
        assert not azure_problems(copy) and not azure_problems(sidecar_name(copy))
    assert len(function_env.names("accepted")) == 4


def test_a_name_near_1024_characters_is_routed_under_a_shortened_name_listed_before_it_is_written(function_env):
    """Issue 9: copy and sidecar names passed 1,024 characters (Azure refuses them, Azurite does not) after the record
    already listed them. Now the record lists names within the limit, says they were shortened, and keeps the name."""
    name = "cams/" + "c" * (MAX_NAME_LENGTH - 9) + ".jpg"
    assert azure_length(name) == MAX_NAME_LENGTH
    data = scene("forest", seed=71)
    function_env.upload(name, data)
    record = function_env.deliver(name).record
    assert record["blob"]["name"] == name
    [destination] = record["destinations"]
    container, copy = destination.split("/", 1)
    assert azure_length(sidecar_name(copy)) <= MAX_NAME_LENGTH and copy.endswith(".jpg")
    assert record["placement"][0]["reason"] == "name_shortened"
    assert matches(decode(Location(container), copy, tagged=True), name)
    assert function_env.read("accepted", copy) == data
    assert all(azure_length(n) <= MAX_NAME_LENGTH for n in function_env.names("accepted"))
    assert function_env.records() == [record]


def test_a_newline_in_a_blob_name_cannot_forge_a_log_line(function_env, caplog):
    """Issue 9 (part 3.5): names reached log lines unescaped, so a name could write a fake line into the log."""
    name = "evil\nINFO cvops.functions routed incoming/fake.jpg: accepted.jpg"
    function_env.upload(name, scene("beach", seed=81))
    with caplog.at_level(logging.INFO, logger="cvops"):
        outcome = function_env.deliver(name)
    assert outcome.record["blob"]["name"] == name
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("cvops")]
    assert any("evil\\nINFO" in line for line in lines)
    assert not any("\n" in line for line in lines)
    assert all(not azure_problems(d.split("/", 1)[1]) for d in outcome.record["destinations"])
