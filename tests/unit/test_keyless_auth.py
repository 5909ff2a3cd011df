"""Keyless access to Custom Vision and Computer Vision: an Entra ID bearer token on every request, never a key.

The SDKs talk to a tiny HTTP server on a free port that records each request's headers and answers with a minimal
valid body, so what is checked is what really went over the wire. The credential is a stand-in that hands out fixed
tokens (no Entra ID here), shaped like azure-core's ``TokenCredential``.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from azure.core.credentials import AccessToken
from azure.identity import DefaultAzureCredential

from cvops import clients
from cvops.errors import ConfigurationError
from functions import context
from functions.config import load_config

from .scripted_http import Answer, Request, serving

TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.keyless-test-token.c2lnbmF0dXJl"
PROJECT = "00000000-0000-0000-0000-000000000001"


class FixedCredential:
    """A TokenCredential that returns ``tokens`` in turn, each valid for ``lifetime`` seconds from when it is asked."""

    def __init__(self, *tokens: str, lifetime: float = 3600.0) -> None:
        self.tokens = list(tokens or [TOKEN])
        self.lifetime = lifetime
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs) -> AccessToken:
        self.scopes.append(scopes)
        token = self.tokens[min(len(self.scopes), len(self.tokens)) - 1]
        return AccessToken(token, int(time.time() + self.lifetime))


@dataclass
class Recorder:
    url: str
    headers: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """An HTTP server that records request headers and answers each API with the smallest valid body."""
    seen: list[dict[str, str]] = []

    def answer(request: Request) -> Answer:
        seen.append(request.headers)
        if "/training/" in request.path:
            body: object = []
        elif "/prediction/" in request.path:
            body = {"id": PROJECT, "project": PROJECT, "iteration": PROJECT, "predictions": []}
        else:
            body = {"adult": {"isAdultContent": False, "adultScore": 0.01}}
        return 200, {}, body

    with serving(answer) as url:
        yield Recorder(url, seen)


def one_call(kind: str, endpoint: str, **kwargs) -> None:
    """Build the ``kind`` client with ``kwargs`` and make one real request with it."""
    if kind == "training":
        clients.training_client(endpoint, **kwargs).get_domains()
    elif kind == "prediction":
        clients.prediction_client(endpoint, **kwargs).classify_image_with_no_store(PROJECT, "live", io.BytesIO(b"x"))
    else:
        clients.computer_vision_client(endpoint, **kwargs).analyze_image_in_stream(io.BytesIO(b"x"),
                                                                                   visual_features=["Adult"])


KINDS = ["training", "prediction", "computer_vision"]
KEY_HEADERS = {"training-key", "prediction-key", "ocp-apim-subscription-key"}


@pytest.mark.parametrize("kind", KINDS)
def test_without_a_key_each_request_carries_a_bearer_token_for_the_cognitive_services_scope(recorder, kind) -> None:
    credential = FixedCredential()
    one_call(kind, recorder.url, credential=credential)
    (headers,) = recorder.headers
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert not KEY_HEADERS & set(headers)
    assert credential.scopes == [("https://cognitiveservices.azure.com/.default",)]


@pytest.mark.parametrize("kind", KINDS)
def test_with_a_key_the_key_header_goes_and_no_token_is_asked_for(recorder, kind) -> None:
    one_call(kind, recorder.url, key="0123456789abcdef")
    (headers,) = recorder.headers
    assert "authorization" not in headers
    assert "0123456789abcdef" in {headers.get(h) for h in KEY_HEADERS}


def test_the_token_is_reused_while_it_has_more_than_five_minutes_left(recorder) -> None:
    credential = FixedCredential("first-token", "second-token", lifetime=3600)
    client = clients.prediction_client(recorder.url, credential=credential)
    for _ in range(3):
        client.classify_image_with_no_store(PROJECT, "live", io.BytesIO(b"x"))
    assert [h["authorization"] for h in recorder.headers] == ["Bearer first-token"] * 3
    assert len(credential.scopes) == 1


def test_a_token_with_less_than_five_minutes_left_is_replaced_before_the_request(recorder) -> None:
    credential = FixedCredential("first-token", "second-token", lifetime=299)
    client = clients.prediction_client(recorder.url, credential=credential)
    for _ in range(2):
        client.classify_image_with_no_store(PROJECT, "live", io.BytesIO(b"x"))
    assert [h["authorization"] for h in recorder.headers] == ["Bearer first-token", "Bearer second-token"]


def test_the_token_never_reaches_a_log_line_or_a_repr(recorder, caplog) -> None:
    caplog.set_level(logging.DEBUG)  # msrest and urllib3 log requests, with their headers, at DEBUG
    credential = FixedCredential()
    client = clients.prediction_client(recorder.url, credential=credential)
    client.config.enable_http_logger = True
    client.classify_image_with_no_store(PROJECT, "live", io.BytesIO(b"x"))
    assert recorder.headers[0]["authorization"] == f"Bearer {TOKEN}"
    assert caplog.records, "debug logging was on: something should have been logged"
    assert TOKEN not in caplog.text and "keyless-test-token" not in caplog.text
    assert "keyless-test-token" not in repr(client.config.credentials)


def test_no_key_and_no_credential_means_default_azure_credential() -> None:
    client = clients.prediction_client("https://contoso.cognitiveservices.azure.com/")
    auth = client.config.credentials
    assert isinstance(auth, clients.TokenCredentialAuthentication)
    assert isinstance(auth.credential, DefaultAzureCredential)


def test_a_key_and_a_credential_together_are_refused_naming_the_client() -> None:
    with pytest.raises(ConfigurationError) as info:
        clients.prediction_client("https://contoso.cognitiveservices.azure.com/", "0123456789abcdef",
                                  credential=FixedCredential())
    assert "Custom Vision prediction" in str(info.value) and "both a key and a token credential" in str(info.value)


def test_a_blank_key_is_a_mistake_not_a_request_for_keyless_access() -> None:
    with pytest.raises(ConfigurationError, match="key is empty"):
        clients.training_client("https://contoso.cognitiveservices.azure.com/", "   ")


def test_something_that_is_not_a_token_credential_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="get_token"):
        clients.TokenCredentialAuthentication("not-a-credential")


def test_the_function_app_uses_its_identity_when_no_prediction_key_is_set(monkeypatch, recorder) -> None:
    credential = FixedCredential()
    monkeypatch.setattr(context, "_identity", lambda client_id=None: credential)
    monkeypatch.setenv("CVOPS_STORAGE",
                       "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
                       "BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;")
    for name, value in {"VISION_PREDICTION_ENDPOINT": recorder.url, "VISION_PREDICTION_KEY": "",
                        "VISION_PROJECT_ID": PROJECT, "VISION_PUBLISH_NAME": "live",
                        "VISION_MODERATION_ENDPOINT": ""}.items():
        monkeypatch.setenv(name, value)
    ctx = context.build_context(load_config())
    ctx.prediction.classify_image_with_no_store(PROJECT, "live", io.BytesIO(b"x"))
    assert recorder.headers[0]["authorization"] == f"Bearer {TOKEN}"
    assert "prediction-key" not in recorder.headers[0]
