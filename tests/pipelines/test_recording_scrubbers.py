"""The cassette scrubbers (tests/recording.py) on requests and responses shaped like Azure's and the local services'.

Each case is what a recording against a real subscription would hand vcrpy: an account-key or user-delegation SAS in
a URL and a JSON body, key headers, a bearer token, an endpoint echoed in a body, Custom Vision's own storage in image
URIs. The last tests check that the same calls recorded against Azure and against Azurite + the local service come out
identical, and that tests/test_fixtures_hold_no_secrets.py finds nothing in what the scrubbers write.
"""

from __future__ import annotations

import json

import pytest
import yaml
from vcr.request import Request

from devkit.local_services import AZURITE_ACCOUNT, AZURITE_KEY
from tests.recording import (
    FAKE_BLOB_ENDPOINT,
    FAKE_CV_ENDPOINT,
    FAKE_QUEUE_ENDPOINT,
    FAKE_RESOURCE_ID,
    REDACTED,
    Scrubber,
    endpoint_rewrites,
    origin,
    resource_id_rewrites,
    secret_rewrites,
    settings_from,
    storage_rewrites,
)
from tests.test_fixtures_hold_no_secrets import leaks_in

CV = "https://contoso-vision.cognitiveservices.azure.com/"
ACCOUNT = "contosoimages"
ACCOUNT_KEY = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS1ub3QtcmVhbC1hdC1hbGwtMDEyMzQ1Njc4OQ=="
CONN = (f"DefaultEndpointsProtocol=https;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        "EndpointSuffix=core.windows.net")
TRAINING_KEY = "0123456789abcdef0123456789abcdef"
PREDICTION_KEY = "fedcba9876543210fedcba9876543210"
RESOURCE_ID = ("/subscriptions/5f3a1c2e-9b8d-4e7f-a6b5-c4d3e2f1a0b9/resourceGroups/rg-vision/providers/"
               "Microsoft.CognitiveServices/accounts/contoso-vision-prediction")
# Made-up signatures, built at run time so no file holds a SAS-shaped literal for leak scanners to flag.
FAKE_SIG = "Zm9vYmFyYmF6cXV4" + "MTIzNDU2Nzg5MA%3D%3D"
SAS = ("st=2026-11-26T10%3A00%3A00Z&se=2026-11-26T11%3A05%3A00Z&sp=r&sv=2026-10-06&sr=b"
       "&sig=" + FAKE_SIG)
DELEGATION_SAS = ("st=2026-11-26T10%3A00%3A00Z&se=2026-11-26T11%3A05%3A00Z&skoid=9a1f0c3e-1111-2222-3333-444455556666"
                  "&sktid=72f988bf-86f1-41af-91ab-2d7cd011db47&skt=2026-11-26T10%3A00%3A00Z"
                  "&ske=2026-11-26T11%3A05%3A00Z&sks=b&skv=2026-10-06&sv=2026-10-06&sr=b&sp=r"
                  "&sig=" + "QUJDREVGR0hJSktM" + "TU5PUFFSU1RVVldYWVo%3D")


def azure_scrubber() -> Scrubber:
    scrubber = Scrubber()
    scrubber.use([*endpoint_rewrites(CV, FAKE_CV_ENDPOINT), *storage_rewrites(connection_string=CONN),
                  *secret_rewrites(TRAINING_KEY, PREDICTION_KEY), *resource_id_rewrites(RESOURCE_ID)])
    return scrubber


def response(body: str | bytes, **headers: str) -> dict:
    data = body.encode() if isinstance(body, str) else body
    return {"status": {"code": 200, "message": "OK"}, "headers": {k.replace("_", "-"): [v] for k, v in headers.items()},
            "body": {"string": data}}


def test_an_azure_blob_url_with_an_account_key_sas_becomes_the_fake_account_without_signature_or_lifetime():
    request = Request("GET", f"https://{ACCOUNT}.blob.core.windows.net/training/scenes/beach/b1.jpg?{SAS}", None, {})
    uri = azure_scrubber().request(request).uri
    assert uri == (f"{FAKE_BLOB_ENDPOINT}/training/scenes/beach/b1.jpg?st={REDACTED}&se={REDACTED}&sp=r&sv=2026-10-06"
                   f"&sr=b&sig={REDACTED}")


def test_a_user_delegation_sas_loses_its_signature_and_the_identity_it_was_signed_for():
    text = azure_scrubber().text(f"https://{ACCOUNT}.blob.core.windows.net/c/b.jpg?{DELEGATION_SAS}")
    assert "9a1f0c3e" not in text and "72f988bf" not in text and "QUJDREVG" not in text and "11%3A05" not in text
    for name in ("skoid", "sktid", "skt", "ske", "sks", "skv", "st", "se", "sig"):
        assert f"{name}={REDACTED}" in text
    assert "sv=2026-10-06&sr=b&sp=r" in text


def test_key_headers_are_redacted_and_per_run_headers_dropped_whatever_their_case():
    request = Request("POST", f"{CV}customvision/v3.4-preview/training/projects/p1/train", None, {
        "training-key": TRAINING_KEY, "Authorization": "Bearer eyJ0eXAiOiJKV1QiLCJhbGciOi.payload.signature",
        "X-MS-Client-Request-Id": "6a1d7c2e-0000-4000-8000-000000000001", "User-Agent": "python-requests/2.32",
        "Accept": "application/json"})
    headers = dict(azure_scrubber().request(request).headers)
    assert headers == {"training-key": REDACTED, "Authorization": REDACTED, "Accept": "application/json"}


def test_a_json_body_of_sas_urls_is_scrubbed_like_the_url_itself():
    body = json.dumps({"images": [{"url": f"https://{ACCOUNT}.blob.core.windows.net/t/a.jpg?{SAS}",
                                   "tagIds": ["1a5fe2ef-e7c9-4f46-a610-7dc1ad5aff66"]}]}).encode()
    request = Request("POST", f"{CV}customvision/v3.4-preview/training/projects/p1/images/urls", body,
                      {"Content-Type": "application/json"})
    sent = json.loads(azure_scrubber().request(request).body)
    assert sent["images"][0]["url"] == (f"{FAKE_BLOB_ENDPOINT}/t/a.jpg?st={REDACTED}&se={REDACTED}&sp=r"
                                        f"&sv=2026-10-06&sr=b&sig={REDACTED}")
    assert sent["images"][0]["tagIds"] == ["1a5fe2ef-e7c9-4f46-a610-7dc1ad5aff66"]


def test_a_response_echoing_the_endpoint_a_key_and_custom_visions_own_storage_is_scrubbed():
    body = json.dumps({
        "isBatchSuccessful": True,
        "images": [{"sourceUrl": f"https://{ACCOUNT}.blob.core.windows.net/t/a.jpg?{SAS}", "status": "OK",
                    "image": {"id": "2b4d9d4a-0bd7-471d-99d5-7e351a8d1925",
                              "originalImageUri": "https://irisprodeuwtraining.blob.core.windows.net:443/"
                                                  f"i-4cc38f76/o-2b4d9d4a?{SAS}",
                              "thumbnailUri": f"{CV}customvision/thumbs/2b4d9d4a"}}],
        "note": f"key {PREDICTION_KEY} was used"})
    scrubbed = azure_scrubber().response(response(body, Operation_Location=f"{CV}operations/42",
                                                  Set_Cookie="ARRAffinity=abc123; Secure"))
    text = scrubbed["body"]["string"].decode()
    data = json.loads(text)
    assert data["images"][0]["sourceUrl"].startswith(f"{FAKE_BLOB_ENDPOINT}/t/a.jpg?")
    assert data["images"][0]["image"]["originalImageUri"].startswith(
        "https://fakeexternal.blob.core.windows.net:443/i-4cc38f76/o-2b4d9d4a?")
    assert data["images"][0]["image"]["thumbnailUri"] == f"{FAKE_CV_ENDPOINT}/customvision/thumbs/2b4d9d4a"
    assert data["note"] == f"key {REDACTED} was used"
    assert data["images"][0]["image"]["id"] == "2b4d9d4a-0bd7-471d-99d5-7e351a8d1925"  # ids stay
    assert scrubbed["headers"] == {"Operation-Location": [f"{FAKE_CV_ENDPOINT}/operations/42"]}
    assert leaks_in(text) == []


def test_the_publish_query_names_the_fake_prediction_resource_raw_or_url_quoted():
    scrubber = azure_scrubber()
    quoted = RESOURCE_ID.replace("/", "%2F")
    uri = scrubber.request(Request(
        "POST", f"{CV}customvision/v3.4-preview/training/projects/p/iterations/i/publish?publishName=s&"
                f"predictionId={quoted}", None, {})).uri
    assert uri.endswith("predictionId=" + FAKE_RESOURCE_ID.replace("/", "%2F"))
    assert scrubber.text(f'{{"originalPublishResourceId": "{RESOURCE_ID}"}}') == \
        f'{{"originalPublishResourceId": "{FAKE_RESOURCE_ID}"}}'


def test_an_unknown_subscription_id_is_zeroed_even_without_a_rewrite_for_it():
    text = Scrubber().text("/subscriptions/5f3a1c2e-9b8d-4e7f-a6b5-c4d3e2f1a0b9/resourceGroups/x and "
                           "%2Fsubscriptions%2F5f3a1c2e-9b8d-4e7f-a6b5-c4d3e2f1a0b9%2F")
    assert "5f3a1c2e" not in text and text.count("00000000-0000-0000-0000-000000000000") == 2


def test_a_user_delegation_key_answer_keeps_its_shape_but_not_its_key_or_owner():
    body = ("<?xml version=\"1.0\" encoding=\"utf-8\"?><UserDelegationKey><SignedOid>9a1f0c3e-1111</SignedOid>"
            "<SignedTid>72f988bf-86f1</SignedTid><SignedStart>2026-11-26T10:00:00Z</SignedStart>"
            "<SignedService>b</SignedService><Value>a2V5LWJ5dGVzLTAxMjM0NTY3ODk=</Value></UserDelegationKey>")
    text = azure_scrubber().response(response(body))["body"]["string"].decode()
    assert f"<SignedOid>{REDACTED}</SignedOid>" in text and f"<Value>{REDACTED}</Value>" in text
    assert "a2V5LWJ5" not in text and "<SignedService>b</SignedService>" in text


def test_token_requests_are_not_recorded():
    scrubber = azure_scrubber()
    token = Request("POST", "https://login.microsoftonline.com/72f988bf/oauth2/v2.0/token", b"client_secret=s", {})
    imds = Request("GET", "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01", None, {})
    assert scrubber.request(token) is None and scrubber.request(imds) is None


def test_image_bytes_in_a_body_are_kept_byte_for_byte():
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256))
    request = Request("POST", f"{CV}customvision/v3.1/prediction/p/classify/iterations/s/image/nostore", jpeg,
                      {"Content-Type": "application/octet-stream"})
    assert azure_scrubber().request(request).body == jpeg
    assert azure_scrubber().response(response(jpeg))["body"]["string"] == jpeg


def test_a_streamed_body_is_dropped_when_asked():
    import io

    request = Request("POST", f"{CV}vision/v3.2/analyze?visualFeatures=Adult", io.BytesIO(b"\xff\xd8jpeg"),
                      {"Ocp-Apim-Subscription-Key": "k" * 32})
    recorded = Scrubber(drop_request_bodies=True).request(request)
    assert recorded.body is None and dict(recorded.headers) == {"Ocp-Apim-Subscription-Key": REDACTED}
    assert yaml.safe_dump(recorded._to_dict())  # serialisable as a cassette entry


def test_the_same_calls_recorded_against_azure_and_against_the_local_services_come_out_identical():
    azurite = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
               f"AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:41234/{AZURITE_ACCOUNT};")
    local = Scrubber()
    local.use([*endpoint_rewrites("http://127.0.0.1:40111", FAKE_CV_ENDPOINT),
               *storage_rewrites(connection_string=azurite), *secret_rewrites("local-training-key-1")])

    def record(scrubber, cv, blob, key):
        request = Request("POST", f"{cv}/customvision/v3.4-preview/training/projects/p/images/urls",
                          json.dumps({"images": [{"url": f"{blob}/t/a.jpg?{SAS}"}]}).encode(),
                          {"Training-Key": key, "x-ms-client-request-id": "r1"})
        answer = response(json.dumps({"images": [{"sourceUrl": f"{blob}/t/a.jpg?{SAS}", "status": "OK"}]}))
        recorded = scrubber.request(request)
        return recorded.uri, recorded.body, dict(recorded.headers), scrubber.response(answer)

    assert record(azure_scrubber(), CV.rstrip("/"), f"https://{ACCOUNT}.blob.core.windows.net", TRAINING_KEY) == \
        record(local, "http://127.0.0.1:40111", f"http://127.0.0.1:41234/{AZURITE_ACCOUNT}", "local-training-key-1")


def test_storage_rewrites_cover_blob_and_queue_from_a_connection_string_or_an_account_url():
    assert dict(storage_rewrites(connection_string=CONN))[f"https://{ACCOUNT}.blob.core.windows.net"] == \
        FAKE_BLOB_ENDPOINT
    assert dict(storage_rewrites(connection_string=CONN))[f"https://{ACCOUNT}.queue.core.windows.net"] == \
        FAKE_QUEUE_ENDPOINT
    assert dict(storage_rewrites(connection_string=CONN))[ACCOUNT_KEY] == REDACTED
    assert storage_rewrites(account_url=f"https://{ACCOUNT}.blob.core.windows.net/") == [
        (f"https://{ACCOUNT}.blob.core.windows.net", FAKE_BLOB_ENDPOINT),
        (f"https://{ACCOUNT}.queue.core.windows.net", FAKE_QUEUE_ENDPOINT)]


def test_an_endpoint_that_is_not_a_url_is_refused_with_what_to_give():
    with pytest.raises(ValueError, match="not an absolute URL"):
        origin("contoso-vision.cognitiveservices.azure.com")


def test_settings_from_the_environment_all_or_nothing():
    names = ["VISION_TRAINING_ENDPOINT", "VISION_TRAINING_KEY"]
    storage = ["AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_URL"]
    assert settings_from({"HOME": "/root", "VISION_TRAINING_KEY": " "}, names, any_of=storage) is None
    full = {"VISION_TRAINING_ENDPOINT": CV, "VISION_TRAINING_KEY": TRAINING_KEY,
            "AZURE_STORAGE_ACCOUNT_URL": "https://contosoimages.blob.core.windows.net"}
    assert settings_from(full, names, any_of=storage) == full
    with pytest.raises(ValueError) as caught:
        settings_from({"VISION_TRAINING_ENDPOINT": CV}, names, any_of=storage)
    message = str(caught.value)
    assert "VISION_TRAINING_KEY" in message and "AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_URL" in message
    assert TRAINING_KEY not in message and CV not in message  # names, never values
