"""The storage clients' transport reads the environment once, not on every request, unless it asks for something."""

from __future__ import annotations

import pytest
from azure.core.pipeline.transport import RequestsTransport

from cvops import clients

ENVIRONMENT_KNOBS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture
def plain_environment(monkeypatch):
    for name in ENVIRONMENT_KNOBS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def _client():
    return clients.blob_service_client(
        connection_string="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
                          "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;")


def test_with_no_proxy_set_the_transport_does_not_scan_the_environment_per_request(plain_environment):
    transport = clients.storage_transport_options()["transport"]
    assert isinstance(transport, RequestsTransport) and transport._use_env_settings is False
    assert transport.connection_config.verify is True
    assert _client()._pipeline._transport._use_env_settings is False


@pytest.mark.parametrize("names", [("REQUESTS_CA_BUNDLE",), ("CURL_CA_BUNDLE",), ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")])
def test_a_ca_bundle_named_by_the_environment_is_read_once_and_verifies_tls_as_requests_would(plain_environment, names):
    for name in names:
        plain_environment.setenv(name, f"/etc/ssl/{name.lower()}.pem")
    transport = clients.storage_transport_options()["transport"]
    assert transport._use_env_settings is False
    assert transport.connection_config.verify == f"/etc/ssl/{names[0].lower()}.pem"  # requests' order


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"])
def test_a_proxy_in_the_environment_keeps_the_sdks_default_transport_which_honours_it(plain_environment, name):
    plain_environment.setenv(name, "http://proxy.example:3128" if name != "NO_PROXY" else "blob.core.windows.net")
    assert clients.storage_transport_options() == {}
    assert _client()._pipeline._transport._use_env_settings is True
