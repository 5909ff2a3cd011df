"""The local service's moderation stand-ins answer as the official specs say: Computer Vision 3.2 AnalyzeImage
(computervision/v3.2/ComputerVision.json) and Content Safety ImageOperations_AnalyzeImage
(contentsafety/2024-09-01/contentsafety.json), driven by the official SDKs where they can send the request.

Every raw answer (success and error) is validated against its operation's schema; error codes must be in the spec's
enums (Computer Vision) or the documented list (Content Safety), and Content Safety's `x-ms-error-code` header must
carry the body's code. A wrong key is the gateway's 401, outside both specs (emulator/README.md, "Errors").
"""

from __future__ import annotations

import base64
import io
from urllib.parse import urlsplit

import pytest
import requests
from azure.ai.contentsafety import ContentSafetyClient
from azure.ai.contentsafety.models import AnalyzeImageOptions, ImageCategory, ImageData
from azure.cognitiveservices.vision.computervision import ComputerVisionClient
from azure.cognitiveservices.vision.computervision.models import ComputerVisionErrorResponseException, VisualFeatureTypes
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError
from msrest.authentication import CognitiveServicesCredentials
from spec_schemas import spec, validate_response

from devkit import moderation_scenes, scenes

CS_CODES = {"InvalidRequestBody", "InvalidResourceName", "ResourceNotFound", "InternalError", "ServerBusy",
            "TooManyRequests", "MissingApiVersionParameter", "UnsupportedApiVersionValue"}


def cv_enums() -> tuple[set[str], set[str]]:
    definitions = spec("vision", "v3.2")["definitions"]
    return (set(definitions["ComputerVisionError"]["properties"]["code"]["enum"]),
            set(definitions["ComputerVisionInnerError"]["properties"]["code"]["enum"]))


def png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    scenes.render("forest", 1, size=size).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def cv_answers(local_cv):
    """A Computer Vision client (the official SDK) whose every raw answer is kept for validation."""
    seen: list[tuple[str, str, int, object]] = []

    def hook(response, *args, **kwargs):
        seen.append((response.request.method, urlsplit(response.url).path, response.status_code,
                     response.json() if response.content else None))
        return response

    client = ComputerVisionClient(local_cv.endpoint, CognitiveServicesCredentials(local_cv.prediction_key))
    client.config.retry_policy.retries = 0
    client.config.hooks.append(hook)
    return client, seen


def test_computer_vision_adult_answers_and_image_errors_validate_against_the_v32_spec(local_cv, cv_answers):
    client, seen = cv_answers
    scores = {}
    for band in moderation_scenes.BANDS:
        result = client.analyze_image_in_stream(io.BytesIO(moderation_scenes.generate("adult", band)),
                                                visual_features=[VisualFeatureTypes.adult])
        scores[band] = result.adult.adult_score
    assert scores["pass"] < 0.4 <= scores["review"] <= 0.7 < scores["reject"]
    for bad in (b"not an image", png((40, 40)), scenes.truncated_jpeg(3)):
        with pytest.raises(ComputerVisionErrorResponseException) as caught:
            client.analyze_image_in_stream(io.BytesIO(bad), visual_features=[VisualFeatureTypes.adult])
        assert caught.value.response.status_code == 400
    with pytest.raises(ComputerVisionErrorResponseException) as caught:
        client.analyze_image_in_stream(io.BytesIO(moderation_scenes.generate("adult", "pass")),
                                       visual_features=[VisualFeatureTypes.tags])
    assert caught.value.error.error.innererror.code == "NotSupportedVisualFeature"
    codes, inner_codes = cv_enums()
    assert len(seen) == 7
    for method, path, status, body in seen:
        assert validate_response("vision", "v3.2", method, path, status, body) == "AnalyzeImage"
        if status >= 400:
            assert body["error"]["code"] in codes and body["error"]["innererror"]["code"] in inner_codes


def test_computer_vision_refuses_a_wrong_content_type_and_url_with_spec_error_codes(local_cv):
    url = f"{local_cv.endpoint}/vision/v3.2/analyze?visualFeatures=Adult"
    headers = {"Ocp-Apim-Subscription-Key": local_cv.prediction_key}
    codes, inner_codes = cv_enums()
    answers = [
        requests.post(url, data=b"x", headers={**headers, "Content-Type": "text/plain"}, timeout=30),
        requests.post(url, json={"url": "http://example.invalid/x.jpg"}, headers=headers, timeout=30),
        requests.post(url + "&language=xx", data=b"x", headers={**headers, "Content-Type": "application/octet-stream"},
                      timeout=30),
    ]
    assert [a.status_code for a in answers] == [415, 400, 400]
    assert [a.json()["error"]["innererror"]["code"] for a in answers] == [
        "UnsupportedMediaType", "InvalidImageUrl", "NotSupportedLanguage"]
    for answer in answers:
        validate_response("vision", "v3.2", "POST", "/vision/v3.2/analyze", answer.status_code, answer.json())
        assert answer.json()["error"]["code"] in codes
        assert answer.json()["error"]["innererror"]["code"] in inner_codes


def test_content_safety_sdk_runs_unchanged_and_severities_follow_the_rendered_band(local_cv):
    client = ContentSafetyClient(local_cv.endpoint, AzureKeyCredential(local_cv.prediction_key), retry_total=0)
    found = {}
    for kind, category in (("adult", ImageCategory.SEXUAL), ("gore", ImageCategory.VIOLENCE)):
        for band in moderation_scenes.BANDS:
            result = client.analyze_image(AnalyzeImageOptions(image=ImageData(
                content=moderation_scenes.generate(kind, band))))
            by_category = {item.category: item.severity for item in result.categories_analysis}
            assert set(by_category) == {"Hate", "SelfHarm", "Sexual", "Violence"}
            assert by_category["Hate"] == by_category["SelfHarm"] == 0
            found[kind, band] = by_category[category]
    assert found == {("adult", "pass"): 0, ("adult", "review"): 2, ("adult", "reject"): 6,
                     ("gore", "pass"): 0, ("gore", "review"): 2, ("gore", "reject"): 6}


@pytest.mark.parametrize("api_version", ["2023-10-01", "2024-09-01"])
def test_content_safety_answers_and_errors_validate_against_the_spec_with_the_code_in_a_header(local_cv,
                                                                                             api_version):
    url = f"{local_cv.endpoint}/contentsafety/image:analyze"
    headers = {"Ocp-Apim-Subscription-Key": local_cv.prediction_key}
    content = base64.b64encode(moderation_scenes.generate("gore", "reject")).decode()
    bodies = [
        {"image": {"content": content}},
        {"image": {"content": content}, "categories": ["Violence"], "outputType": "FourSeverityLevels"},
        {"image": {"content": content, "blobUrl": "http://127.0.0.1:1/x.png"}},  # both: refused
        {"image": {}},
        {"image": {"content": "not base64!"}},
        {"image": {"content": base64.b64encode(png((40, 60))).decode()}},  # under 50 px
        {"image": {"content": base64.b64encode(png((2100, 60))).decode()}},  # over 2,048 px
        {"image": {"content": content}, "outputType": "EightSeverityLevels"},  # text only
        {"image": {"content": content}, "categories": ["Nudity"]},
    ]
    answers = [requests.post(url, params={"api-version": api_version}, json=b, headers=headers, timeout=30)
               for b in bodies]
    assert [a.status_code for a in answers] == [200, 200] + [400] * 7
    assert answers[0].json()["categoriesAnalysis"][3] == {"category": "Violence", "severity": 6}
    assert answers[1].json() == {"categoriesAnalysis": [{"category": "Violence", "severity": 6}]}
    for answer in answers:
        assert validate_response("contentsafety", "2024-09-01", "POST", "/contentsafety/image:analyze",
                                 answer.status_code, answer.json()) == "ImageOperations_AnalyzeImage"
        if answer.status_code >= 400:
            assert answer.json()["error"]["code"] in CS_CODES
            assert answer.headers["x-ms-error-code"] == answer.json()["error"]["code"]


def test_content_safety_accepts_each_documented_format_and_refuses_others(local_cv):
    client = ContentSafetyClient(local_cv.endpoint, AzureKeyCredential(local_cv.prediction_key), retry_total=0)
    picture = moderation_scenes.render("adult", "reject", size=(120, 90))
    for fmt in ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"):
        out = io.BytesIO()
        picture.save(out, format=fmt)
        result = client.analyze_image(AnalyzeImageOptions(image=ImageData(content=out.getvalue())))
        assert {i.category: i.severity for i in result.categories_analysis}["Sexual"] >= 4, fmt
    out = io.BytesIO()
    picture.save(out, format="ICO")
    with pytest.raises(HttpResponseError) as caught:
        client.analyze_image(AnalyzeImageOptions(image=ImageData(content=out.getvalue())))
    assert caught.value.status_code == 400 and caught.value.error.code == "InvalidRequestBody"
    assert "ICO" in caught.value.error.message


def test_a_wrong_key_gets_the_gateways_401_from_both_moderation_apis(local_cv):
    vision = ComputerVisionClient(local_cv.endpoint, CognitiveServicesCredentials("wrong-key"))
    vision.config.retry_policy.retries = 0
    with pytest.raises(ComputerVisionErrorResponseException) as caught:
        vision.analyze_image_in_stream(io.BytesIO(b"x"), visual_features=[VisualFeatureTypes.adult])
    assert caught.value.response.status_code == 401 and caught.value.response.reason == "Access Denied"
    safety = ContentSafetyClient(local_cv.endpoint, AzureKeyCredential("wrong-key"), retry_total=0)
    with pytest.raises(HttpResponseError) as refused:
        safety.analyze_image(AnalyzeImageOptions(image=ImageData(content=b"x")))
    assert refused.value.status_code == 401 and refused.value.error.code == "401"


def test_paths_no_operation_serves_answer_the_gateways_404_naming_what_is_served(local_cv):
    headers = {"Ocp-Apim-Subscription-Key": local_cv.prediction_key}
    text = requests.post(f"{local_cv.endpoint}/contentsafety/text:analyze?api-version=2024-09-01", json={"text": "x"},
                         headers=headers, timeout=30)
    tags = requests.post(f"{local_cv.endpoint}/vision/v3.2/tag", data=b"x", headers=headers, timeout=30)
    assert (text.status_code, tags.status_code) == (404, 404)
    assert "image:analyze" in text.json()["error"]["message"] and "visualFeatures=Adult" in tags.json()["error"]["message"]
    validate_response("contentsafety", "2024-09-01", "POST", "/contentsafety/text:analyze", 404, text.json())


def test_every_error_code_the_moderation_stand_ins_use_is_in_their_specs_or_documented_list():
    import re
    from pathlib import Path

    import emulator

    root = Path(emulator.__file__).parent
    sources = {p.name: p.read_text() for p in root.glob("moderation_*.py")}
    used = {code for text in sources.values() for code in re.findall(r'(?:code|inner)\s*=\s*"([A-Za-z0-9]+)"', text)}
    codes, inner_codes = cv_enums()
    assert len(used) > 15
    assert used - codes - inner_codes - CS_CODES - {"404", "429"} == set()  # 404 and 429: the gateway's
