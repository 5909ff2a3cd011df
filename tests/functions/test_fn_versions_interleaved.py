"""Two versions of one blob, delivered in every order: a routed copy is never replaced, no bytes are lost.

A blob overwritten under the same name is a new version with a new ETag, and an invocation that read the old
version may write late (held up after its read), twice, or at the same time as the new one's. (The trigger gets a
BlobClient and reads the current version itself: "capturing" a version here is that read, by the trigger's code.)
Both versions here are beach scenes, so both are routed to the same plain copy name: exactly the case where one
version could destroy the other's copy. Every scenario runs on Azurite through the trigger's read and the handler,
with and without ``CVOPS_MOVE_SOURCE``:

* sequential: every distinct order of delivering A twice and B twice, both captured before any delivery;
* routed before replaced: A delivered (and moved) before B is uploaded, then a late retry of A;
* concurrent: threads released together (A with B, and two of each);
* paused: one version's invocation is stopped before each of its storage calls in turn while the other version runs
  to completion, then resumed (every point where a check and a write of one could straddle the other's writes);
* killed: a late older version, whose name is taken, dies before each of its storage calls, then the host retries.

Each ends with the same checks: one record per version; every destination of a record holds that version's bytes,
carries its key and its sidecar; nothing else in the output containers; the newest version's copy intact; the source
gone only when moved. The module prints how many interleavings it ran and the storage calls per delivery.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import threading

import pytest
from fn_helpers import registered, scene

from functions import context, store
from functions.blob_reader import NewBlob, read_new_blob
from functions.handler import observe, process_blob
from functions.naming import Location, decode, matches, sidecar_name

NAME = "cams/gate/v.jpg"
SEEDS = {"A": 91, "B": 92}
OUTPUTS = ("accepted", "review", "rejected", "quarantine")
TALLY: collections.Counter[str] = collections.Counter()
CALLS: collections.Counter[int] = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    """Print how many interleavings ran and what a delivery cost in storage calls (figures for the lead's note)."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or not TALLY:
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.write_line("\nversion interleavings (test_fn_versions_interleaved):")
        for kind, count in sorted(TALLY.items()):
            reporter.write_line(f"  {kind}: {count}")
        reporter.write_line(f"  storage calls per delivery: {dict(sorted(CALLS.items()))}")


def snapshot(env, name: str) -> NewBlob:
    """An invocation of the trigger that has read the blob's current version and not yet written anything.

    The trigger is handed a BlobClient and reads whatever version is current, so an older version can only arrive
    late as an invocation that read it and was held up (a slow instance, a retry of the routing after the read):
    this is that read, done by the trigger's own code, and :func:`deliver` is the rest of the invocation."""
    found = read_new_blob(env.client(name))
    assert found is not None
    return found


def deliver(captured: NewBlob) -> None:
    """The rest of an invocation that read ``captured``: the handler, as the registered trigger calls it."""
    registered("route_new_blob")  # the app is loaded, as in the host
    process_blob(captured.source, captured.data, context.current(), refused=captured.refused)


@contextlib.contextmanager
def counting_calls():
    with observe(lambda outcome: CALLS.update([outcome.storage_calls])):
        yield


def etag_of(captured: NewBlob) -> str:
    return captured.source.etag


def upload_two_versions(env) -> tuple[dict[str, NewBlob], dict[str, bytes]]:
    data = {v: scene("beach", seed=seed) for v, seed in SEEDS.items()}
    captured = {}
    for version in ("A", "B"):
        env.upload(NAME, data[version])
        captured[version] = snapshot(env, NAME)
    return captured, data


def assert_converged(env, data: dict[str, bytes], newest_etag: str, *, move: bool) -> None:
    """One record per version; each record's copies hold its bytes (the newest's included), no version's bytes are
    lost; then each copy carries its record's key and sidecar, and nothing else is in the output containers."""
    records = env.records()
    assert len(records) == len({r["key"] for r in records}) == 2  # one record per version
    held: dict[str, bytes] = {}
    for record in records:
        assert record["blob"]["name"] == NAME
        for destination in record["destinations"]:
            copy = env.blob_service.get_blob_client(*destination.split("/", 1)).download_blob().readall()
            assert held.setdefault(record["key"], copy) == copy
    assert sorted(held.values()) == sorted(data.values())  # each version's bytes kept once, none mixed up
    [newest] = [r for r in records if r["blob"]["etag"] == newest_etag]
    assert held[newest["key"]] == data["B"]
    if move:
        assert env.names("incoming") == []
    else:
        assert env.read("incoming", NAME) == data["B"]
    for record in records:
        for destination in record["destinations"]:
            container, copy = destination.split("/", 1)
            blob = env.blob_service.get_blob_client(container, copy)
            assert blob.get_blob_properties().metadata["cvops_key"] == record["key"]
            sidecar = env.blob_service.get_blob_client(container, sidecar_name(copy)).download_blob().readall()
            assert json.loads(sidecar) == record
            assert matches(decode(Location(container), copy, tagged=record["outcome"] == "accepted"), NAME)
    expected = {d for r in records for d in r["destinations"]}
    expected |= {sidecar_name(d) for d in expected}
    found = {f"{env.containers[key]}/{n}" for key in OUTPUTS for n in env.names(key)}
    assert found == expected  # nothing stray, nothing unrecorded


# --- the reproduction from the issue ---------------------------------------------------------------------------------


@pytest.mark.parametrize("move", [False, True], ids=["copy", "move"])
def test_a_late_older_version_routed_after_the_newer_one_never_replaces_its_copy(function_env, move):
    """Issue 9, defect 1: put A, capture its trigger; put B; route B; route A. The plain copy name and its sidecar
    used to hold A afterwards, and with CVOPS_MOVE_SOURCE B's bytes ended up nowhere."""
    function_env.set(CVOPS_MOVE_SOURCE=str(move).lower())
    captured, data = upload_two_versions(function_env)
    with counting_calls():
        deliver(captured["B"])
        deliver(captured["A"])
    plain = "beach/" + NAME
    assert function_env.read("accepted", plain) == data["B"]
    records = {r["blob"]["etag"]: r for r in function_env.records()}
    b_record, a_record = records[etag_of(captured["B"])], records[etag_of(captured["A"])]
    assert json.loads(function_env.read("accepted", sidecar_name(plain))) == b_record
    [a_copy] = a_record["destinations"]
    assert a_copy != f"{function_env.containers['accepted']}/{plain}"
    assert function_env.read("accepted", a_copy.split("/", 1)[1]) == data["A"]
    [note] = a_record["placement"]
    assert note["reason"] == "name_taken" and note["held_by"]["etag"] == b_record["blob"]["etag"].strip('"')
    assert_converged(function_env, data, etag_of(captured["B"]), move=move)
    TALLY["reproduction (B routed, then A late)"] += 1


# --- sequential orders -----------------------------------------------------------------------------------------------

ORDERS = sorted(set(itertools.permutations("AABB")))


@pytest.mark.parametrize("move", [False, True], ids=["copy", "move"])
@pytest.mark.parametrize("order", ["".join(o) for o in ORDERS])
def test_two_versions_delivered_in_any_order_keep_every_copy(function_env, order, move):
    function_env.set(CVOPS_MOVE_SOURCE=str(move).lower())
    captured, data = upload_two_versions(function_env)
    with counting_calls():
        for version in order:
            deliver(captured[version])
    assert_converged(function_env, data, etag_of(captured["B"]), move=move)
    TALLY["sequential orders"] += 1


@pytest.mark.parametrize("move", [False, True], ids=["copy", "move"])
def test_a_version_routed_before_it_was_replaced_keeps_its_copy_when_the_next_one_and_a_late_retry_arrive(
        function_env, move):
    function_env.set(CVOPS_MOVE_SOURCE=str(move).lower())
    data = {v: scene("beach", seed=seed) for v, seed in SEEDS.items()}
    with counting_calls():
        function_env.upload(NAME, data["A"])
        first = snapshot(function_env, NAME)
        deliver(first)  # routed (and moved) while it was the current version
        function_env.upload(NAME, data["B"])
        second = snapshot(function_env, NAME)
        deliver(second)
        deliver(first)  # the host retries A late
    assert_converged(function_env, data, etag_of(second), move=move)
    TALLY["routed before replaced"] += 1


# --- concurrent ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("move", [False, True], ids=["copy", "move"])
@pytest.mark.parametrize("pattern", ["AB", "AABB"])
def test_versions_delivered_at_the_same_time_keep_every_copy(function_env, pattern, move):
    function_env.set(CVOPS_MOVE_SOURCE=str(move).lower())
    captured, data = upload_two_versions(function_env)
    registered("route_new_blob")  # load the app before the threads race to
    barrier = threading.Barrier(len(pattern))
    errors: list[BaseException] = []

    def run(version: str) -> None:
        barrier.wait()
        try:
            deliver(captured[version])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    with counting_calls():
        threads = [threading.Thread(target=run, args=(v,)) for v in pattern]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors, errors
    assert_converged(function_env, data, etag_of(captured["B"]), move=move)
    TALLY["concurrent runs"] += 1


# --- paused before each storage call ---------------------------------------------------------------------------------

# Every BlobStore method that makes one storage call (read_json is read_record plus parsing).
GATED = ("read_record", "create_record", "replace_record", "metadata", "put_verified", "put_json", "delete_version")


class Gate:
    """Stops one thread's invocation before its ``at``-th storage call until released."""

    def __init__(self, at: int):
        self.at = at
        self.count = 0
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.settled = threading.Event()  # paused, or finished without reaching the call

    def before_call(self) -> None:
        self.count += 1
        if self.count == self.at:
            self.paused.set()
            self.settled.set()
            assert self.resume.wait(60), "the paused invocation was never resumed"


_gates: dict[int, Gate] = {}


@pytest.fixture
def gated_store(monkeypatch):
    """BlobStore whose storage calls stop at the calling thread's gate, if it has one."""
    for method in GATED:
        original = getattr(store.BlobStore, method)

        def gated(self, *args, _original=original, **kwargs):
            gate = _gates.get(threading.get_ident())
            if gate is not None:
                gate.before_call()
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(store.BlobStore, method, gated)
    yield
    _gates.clear()


@pytest.mark.parametrize("move", [False, True], ids=["copy", "move"])
@pytest.mark.parametrize("at", range(1, 7), ids=lambda n: f"call{n}")
@pytest.mark.parametrize("paused, other", [("A", "B"), ("B", "A")], ids=["A-paused", "B-paused"])
def test_a_version_paused_before_any_storage_call_while_the_other_is_routed_keeps_every_copy(
        function_env, gated_store, paused, other, at, move):
    function_env.set(CVOPS_MOVE_SOURCE=str(move).lower())
    captured, data = upload_two_versions(function_env)
    registered("route_new_blob")
    gate = Gate(at)
    errors: list[BaseException] = []

    def run_paused() -> None:
        _gates[threading.get_ident()] = gate
        try:
            deliver(captured[paused])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            gate.settled.set()

    with counting_calls():
        thread = threading.Thread(target=run_paused)
        thread.start()
        assert gate.settled.wait(60)
        deliver(captured[other])  # runs to completion while the paused one waits before its call
        gate.resume.set()
        thread.join(60)
    assert not errors, errors
    if not gate.paused.is_set():
        TALLY["paused: call not reached (same as sequential)"] += 1
    else:
        TALLY["paused interleavings"] += 1
    assert_converged(function_env, data, etag_of(captured["B"]), move=move)


class Killed(BaseException):
    """The process dying mid-invocation (not an Exception: nothing in the handler may catch it)."""


class Killer(Gate):
    """Kills the invocation before its ``at``-th storage call."""

    def before_call(self) -> None:
        self.count += 1
        if self.count == self.at:
            self.paused.set()
            raise Killed(f"killed before storage call {self.at}")


@pytest.mark.parametrize("at", range(1, 9), ids=lambda n: f"call{n}")
def test_a_late_older_version_killed_before_any_storage_call_converges_on_the_hosts_retry(
        function_env, gated_store, at):
    """B is routed; A arrives late and its name is taken, so A takes the longest path (create its record, find the
    copy name held, read the holder, create its own copy, correct its record, sidecar, delete). A dies before each of
    those calls in turn; the host's retry must converge on the same end state."""
    function_env.set(CVOPS_MOVE_SOURCE="true")
    captured, data = upload_two_versions(function_env)
    with counting_calls():
        deliver(captured["B"])
        killer = Killer(at)
        _gates[threading.get_ident()] = killer
        try:
            with contextlib.suppress(Killed):
                deliver(captured["A"])
        finally:
            del _gates[threading.get_ident()]
        deliver(captured["A"])  # the host's retry
    assert_converged(function_env, data, etag_of(captured["B"]), move=True)
    TALLY["late version killed before a storage call, then retried" if killer.paused.is_set()
          else "late version not killed (fewer calls)"] += 1
