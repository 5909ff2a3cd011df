"""The blob trigger is declared to the Functions host as an SDK-type binding, so the host sends no blob bytes.

What the Python worker does at indexing, done here with the same library calls (``azurefunctions-extensions-base``):
it resolves the function's type hints, asks the deferred-binding registry whether the annotation is an SDK type, and
builds the raw bindings it sends the host, where ``SupportsDeferredBinding: true`` makes the host send the blob's
coordinates (``model_binding_data``) instead of its contents.
"""

from __future__ import annotations

import json
import typing
from types import SimpleNamespace

import azurefunctions.extensions.bindings.blob as sdk_blob
from azurefunctions.extensions.base import get_binding_registry
from azurefunctions.extensions.base import utils as base_utils

from pipelines.run_local import load_app, registered_functions


def test_the_blob_trigger_is_declared_to_the_host_as_a_deferred_sdk_type_binding():
    function = registered_functions(load_app())["route_new_blob"]
    hints = typing.get_type_hints(function.get_user_function())
    trigger = function.get_trigger()
    registry = get_binding_registry()
    assert registry.check_supported_type(hints[trigger.name])
    assert registry.get(trigger.type) is sdk_blob.BlobClientConverter
    raw, _ = base_utils.get_raw_bindings(function, {trigger.name: SimpleNamespace(pytype=hints[trigger.name])})
    [binding] = [b for b in map(json.loads, raw) if b["type"] == "blobTrigger"]
    assert binding["properties"] == {"SupportsDeferredBinding": True}
    assert binding["source"] == "EventGrid" and binding["connection"] == "CVOPS_STORAGE"


def test_run_local_hands_the_trigger_what_the_extension_builds_from_the_hosts_binding_data(monkeypatch):
    from azure.storage.blob import BlobClient

    from pipelines.run_local import trigger_client

    monkeypatch.setenv("CVOPS_STORAGE", "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
                       "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
                       "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;")
    client = trigger_client("incoming", "cams/a b.jpg")
    assert type(client) is BlobClient  # the SDK's own class, as the worker passes it (the annotation is a subclass)
    assert (client.container_name, client.blob_name) == ("incoming", "cams/a b.jpg")
    assert client.url == "http://127.0.0.1:9/devstoreaccount1/incoming/cams/a%20b.jpg"
