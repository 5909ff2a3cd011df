"""A blob whose name has a ``.`` or ``..`` segment is refused with a record, and the app never sends a request for
any other blob: checked on the URLs the app's storage client put on the wire, against Azurite.

Why on the wire: the storage SDK quotes the name but keeps ``..``; requests/urllib3 then remove dot segments while
preparing the URL, so ``incoming/a/../b.jpg`` is *sent* as ``incoming/b.jpg``. With a SAS (whose signature does not
cover the path; a managed identity's token is the same) that request reads, or deletes, ``b.jpg``. The recording
transport below keeps the URL requests prepared, i.e. what reached Azurite.
"""

from __future__ import annotations

import http.client
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import azure.functions as func
import pytest
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas
from fn_helpers import registered, scene
from hypothesis import given, settings
from hypothesis import strategies as st

from cvops import finite_json
from devkit.local_services import AZURITE_ACCOUNT, AZURITE_KEY
from functions import context
from functions.backlog_message import BacklogItem, refusal
from functions.config import load_config
from functions.handler import UNADDRESSABLE, RoutedBlob, observe
from functions.naming import unaddressable
from pipelines.run_local import run_local


class WireRecorder(RequestsTransport):
    """A requests transport that keeps (method, URL as sent) of every request: the URL after requests prepared it
    (urllib3's normalisation included), which is the request line the service received."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sent: list[tuple[str, str]] = []

    def send(self, request, **kwargs):
        response = super().send(request, **kwargs)
        self.sent.append((request.method, response.internal_response.request.url))
        return response


def _sas_connection(azurite) -> str:
    sas = generate_account_sas(AZURITE_ACCOUNT, AZURITE_KEY, ResourceTypes(service=True, container=True, object=True),
                               AccountSasPermissions(read=True, write=True, delete=True, list=True, add=True,
                                                     create=True, update=True, tag=True),
                               expiry=datetime.now(UTC) + timedelta(hours=2))
    return f"BlobEndpoint={azurite.blob_endpoint};SharedAccessSignature={sas}"


def _put_raw(azurite, container: str, name: str, data: bytes) -> None:
    """Create a blob by a name the SDK cannot send as it is (its dot segments would be removed): a raw request, as
    any uploader with a SAS may send it (http.client sends the path as given)."""
    sas = _sas_connection(azurite).split("SharedAccessSignature=", 1)[1]
    connection = http.client.HTTPConnection("127.0.0.1", azurite.port, timeout=30)
    try:
        connection.request("PUT", f"/{AZURITE_ACCOUNT}/{container}/{quote(name, safe='/')}?{sas}", body=data,
                           headers={"x-ms-blob-type": "BlockBlob", "x-ms-version": "2021-12-02"})
        answer = connection.getresponse()
        assert answer.status == 201, (answer.status, answer.read())
    finally:
        connection.close()


def _recording_context(env) -> WireRecorder:
    recorder = WireRecorder()
    context.install(context.build_context(load_config(), storage_options={"transport": recorder}))
    return recorder


def _paths_in(recorder: WireRecorder, container: str) -> list[str]:
    prefix = f"/{AZURITE_ACCOUNT}/{container}"
    return [urlsplit(url).path for _, url in recorder.sent if urlsplit(url).path.startswith(prefix)]


def _assert_only_addressed(recorder: WireRecorder, container: str, names: set[str]) -> None:
    """Every request the app sent to ``container`` was a listing or named exactly one of ``names`` (quoted as the
    SDK quotes): none reached another blob."""
    allowed = {f"/{AZURITE_ACCOUNT}/{container}"} | {f"/{AZURITE_ACCOUNT}/{container}/{quote(n, safe='/~')}"
                                                     for n in names}
    strays = [path for path in _paths_in(recorder, container) if path not in allowed]
    assert strays == [], f"requests for blobs the app was not given: {strays}"


DOT_NAMES = ["a/../b.jpg", "./b.jpg", "x/y/../../b.jpg", "a/%2E%2E/b.jpg", "a/.%2e/b.jpg", "a\\..\\b.jpg"]


@pytest.mark.parametrize("name", DOT_NAMES)
def test_a_dot_segment_name_from_the_blob_trigger_is_quarantined_unread_and_its_neighbour_is_untouched(
        function_env, azurite, name):
    """SAS connection, trigger without ETag, CVOPS_MOVE_SOURCE=true: before the fix the app read ``b.jpg`` again
    by the normalised URL, filed its bytes under ``a/../b.jpg`` and then deleted ``b.jpg``."""
    function_env.set(CVOPS_STORAGE=_sas_connection(azurite), CVOPS_MOVE_SOURCE="true")
    neighbour = scene("beach")
    function_env.upload("b.jpg", neighbour)
    _put_raw(azurite, function_env.incoming, name, scene("city", seed=9))
    listed = {b.name: b for b in function_env.blob_service.get_container_client(function_env.incoming).list_blobs()}
    stored = next(n for n in listed if n != "b.jpg")  # Azurite decodes %2E and keeps "\\" as it is
    recorder = _recording_context(function_env)
    # What the worker hands over: a client by that name, built from the SAS setting; any read through it would
    # reach b.jpg (the SDK's HTTP stack removes the dot segments).
    client = function_env.client(stored)
    outcomes: list[RoutedBlob] = []
    with observe(outcomes.append):
        registered("route_new_blob")(client)
        registered("route_new_blob")(client)  # a redelivery converges on the same record

    _assert_only_addressed(recorder, function_env.incoming, {stored} if unaddressable(stored) is None else set())
    assert function_env.read("incoming", "b.jpg") == neighbour  # neither read for, nor deleted by, the other name
    assert sorted(function_env.names("incoming")) == sorted(listed)
    [record] = function_env.records()
    assert record["blob"]["name"] == stored and record["blob"]["etag"].strip('"') == listed[stored].etag.strip('"')
    assert record["outcome"] == "quarantine" and record["reasons"][0]["code"] == UNADDRESSABLE
    assert record["destinations"] == [] and record["predictions"] is None
    assert function_env.names("quarantine") == [] and function_env.names("accepted") == []
    assert [o.duplicate for o in outcomes] == [False, True]


@pytest.mark.parametrize("connection", ["sas", "shared_key"])
def test_run_local_routes_the_neighbour_by_its_own_bytes_and_records_the_dot_name_once(function_env, azurite,
                                                                                       connection):
    """With a shared key the dot name used to fail every attempt (the signature covers the normalised path) and be
    poisoned with no record; with a SAS its record was built from the neighbour's bytes."""
    if connection == "sas":
        function_env.set(CVOPS_STORAGE=_sas_connection(azurite))
    function_env.set(CVOPS_MOVE_SOURCE="true")
    neighbour = scene("beach")
    function_env.upload("b.jpg", neighbour)
    _put_raw(azurite, function_env.incoming, "a/../b.jpg", scene("city", seed=9))
    recorder = _recording_context(function_env)

    stats = run_local(once=True, backlog_queue=False)

    assert stats.ok and stats.poisoned == [] and stats.failed == 0
    _assert_only_addressed(recorder, function_env.incoming, {"b.jpg"})
    records = {r["blob"]["name"]: r for r in function_env.records()}
    assert sorted(records) == ["a/../b.jpg", "b.jpg"]
    assert records["a/../b.jpg"]["reasons"][0]["code"] == UNADDRESSABLE
    assert records["a/../b.jpg"]["destinations"] == []
    assert records["b.jpg"]["outcome"] != "quarantine"
    [copy] = records["b.jpg"]["destinations"]
    container = copy.split("/", 1)[0]
    assert function_env.blob_service.get_blob_client(container, copy.split("/", 1)[1]).download_blob().readall() \
        == neighbour
    assert function_env.names("incoming") == ["a/../b.jpg"]  # b.jpg moved by its own routing, the other left


@pytest.mark.parametrize("name", ["a/../b.jpg", "a/%2e%2e/b.jpg", "a/.%2E/b.jpg", "a/%252e%252e/b.jpg", "a\\..\\b.jpg"])
def test_a_dot_segment_name_from_the_backlog_queue_is_refused_on_record_and_nothing_is_requested(function_env, azurite,
                                                                                              name):
    function_env.set(CVOPS_STORAGE=_sas_connection(azurite), CVOPS_MOVE_SOURCE="true")
    function_env.upload("b.jpg", scene("beach"))
    recorder = _recording_context(function_env)
    body = BacklogItem(function_env.incoming, name).encode().encode()
    with observe(pytest.fail):  # no image is routed
        registered("route_backlog_blob")(func.QueueMessage(id="m1", body=body))
    assert _paths_in(recorder, function_env.incoming) == []
    [refused] = [n for n in function_env.names("results") if n.startswith("refused/backlog/")]
    assert finite_json.loads(function_env.read("results", refused))["code"] == "invalid_blob_name"
    assert function_env.names("incoming") == ["b.jpg"]


# --- the rule itself, on generated names ------------------------------------------------------------------------

_DOT_FORMS = st.sampled_from([".", "..", "%2e", "%2E", "%2e%2e", "%2E%2E", ".%2e", "%2E.", "%252e%252e", "%u002e",
                              "\uff0e\uff0e", "%2e%2E"])
_SEGMENT = st.text(st.characters(blacklist_characters="/\\", blacklist_categories=("Cs",)), min_size=1, max_size=8)
_SEPARATOR = st.sampled_from(["/", "\\", "//"])


@settings(max_examples=300, deadline=None)
@given(before=st.lists(_SEGMENT, max_size=3), dots=_DOT_FORMS, after=st.lists(_SEGMENT, max_size=3),
       separator=_SEPARATOR)
def test_any_name_with_a_dot_segment_in_any_encoding_is_unaddressable(before, dots, after, separator):
    name = separator.join([*before, dots, *after])
    assert unaddressable(name) is not None
    assert refusal(BacklogItem("incoming", name), incoming="incoming").code == "invalid_blob_name"


@settings(max_examples=300, deadline=None)
@given(segments=st.lists(_SEGMENT.filter(lambda s: unaddressable(s) is None), min_size=1, max_size=5),
       separator=st.sampled_from(["/", "//"]))
def test_names_without_dot_segments_stay_addressable_empty_segments_included(segments, separator):
    """``a//b``, ``...``, ``.a`` and ``a.`` are names of their own, addressed exactly: they are routed as ever."""
    name = separator.join(segments)
    assert unaddressable(name) is None
    assert unaddressable(f"/{name}//") is None


@pytest.mark.parametrize("name", ["a//b.jpg", "/a.jpg", "a/", ".../x.jpg", ".hidden/x.jpg", "x./y.jpg", "%2Fa.jpg",
                                  "a/..b/c.jpg", "b.jpg.."])
def test_names_that_only_look_like_dot_segments_are_addressable(name):
    assert unaddressable(name) is None
