"""cvops.failures: how long the service asked us to wait and what kind of failure each SDK exception is, read from
exceptions built the way the SDKs build them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from azure.cognitiveservices.vision.computervision.models import ComputerVisionErrorResponseException
from azure.cognitiveservices.vision.customvision.prediction.models import (
    CustomVisionErrorException as PredictionErrorException,
)
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline.transport import HttpRequest, RequestsTransportResponse
from msrest.exceptions import ClientRequestError

from cvops import clients
from cvops.errors import ThrottledError, TransientServiceError
from cvops.failures import failure_kind, retry_after_seconds

from .retry_fakes import ENDPOINT, SECRET, closed_port, cv_error, http_response

# --- retry_after_seconds ------------------------------------------------------------------------------------------

def test_retry_after_header_in_seconds() -> None:
    assert retry_after_seconds(cv_error(429, "TooManyRequests", headers={"Retry-After": "3"})) == 3.0


def test_retry_after_header_as_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 27 <= retry_after_seconds(cv_error(429, headers={"Retry-After": when})) <= 30


def test_retry_after_ms_header_wins() -> None:
    exc = cv_error(429, headers={"retry-after-ms": "1500", "Retry-After": "2"})
    assert retry_after_seconds(exc) == 1.5


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity", "1e999"])
def test_a_retry_after_that_is_not_a_finite_number_counts_as_absent(value) -> None:
    # "inf" used to make the call give up at once (a wait past any budget); "nan" compared as 0 and retried at once
    assert retry_after_seconds(cv_error(429, headers={"Retry-After": value})) is None
    assert retry_after_seconds(cv_error(429, headers={"retry-after-ms": value, "Retry-After": "2"})) == 2.0


def test_retry_after_read_from_the_429_message_when_no_header() -> None:
    message = ("Requests to the ClassifyImage Operation under Custom Vision Prediction API have exceeded rate limit "
               "of your current CustomVision.Prediction F0 pricing tier. Please retry after 1 second.")
    assert retry_after_seconds(cv_error(429, "TooManyRequests", message)) == 1.0
    assert retry_after_seconds(cv_error(429, message="Please retry after 12 seconds")) == 12.0
    assert retry_after_seconds(cv_error(429, message="Rate limit is exceeded. Try again in 26 seconds.")) == 26.0


def test_retry_after_from_computer_vision_and_azure_core_errors() -> None:
    vision = clients.computer_vision_client(ENDPOINT, SECRET)
    body = {"error": {"code": "TooManyRequests", "message": "slow down"}}
    response = http_response(429, body, {"Retry-After": "4"}, key_header="Ocp-Apim-Subscription-Key")
    exc = ComputerVisionErrorResponseException(vision._deserialize, response)
    assert retry_after_seconds(exc) == 4.0

    request = HttpRequest("GET", "https://acct.blob.core.windows.net/c/b")
    core = HttpResponseError(response=RequestsTransportResponse(request, http_response(503, {}, {"Retry-After": "7"})))
    assert retry_after_seconds(core) == 7.0


def test_retry_after_is_none_without_header_or_text() -> None:
    assert retry_after_seconds(cv_error(400, "BadRequestImageFormat", "bad image")) is None
    assert retry_after_seconds(ValueError("nothing here")) is None


# --- failure_kind -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "kind"), [(429, "throttled"), (500, "transient"), (503, "transient"),
                                              (408, "transient"), (400, "permanent"), (401, "permanent"),
                                              (403, "permanent"), (404, "permanent")])
def test_failure_kind_sdk_errors_by_status(status: int, kind: str) -> None:
    assert failure_kind(cv_error(status)) == kind


def test_failure_kind_prediction_and_computer_vision_errors() -> None:
    predictor = clients.prediction_client(ENDPOINT, SECRET)
    exc = PredictionErrorException(predictor._deserialize, http_response(429, {"code": "TooManyRequests"},
                                                                         key_header="Prediction-Key"))
    assert failure_kind(exc) == "throttled"
    vision = clients.computer_vision_client(ENDPOINT, SECRET)
    exc = ComputerVisionErrorResponseException(vision._deserialize,
                                               http_response(500, {"error": {"code": "InternalServerError"}}))
    assert failure_kind(exc) == "transient"


def test_failure_kind_connection_failures_as_transient_and_bad_urls_as_permanent() -> None:
    refused = clients.training_client(f"http://127.0.0.1:{closed_port()}", SECRET)
    with pytest.raises(ClientRequestError) as info:
        refused.get_projects()
    assert failure_kind(info.value) == "transient"
    bad_url = ClientRequestError("Error occurred in request.", requests.exceptions.InvalidURL("bad"))
    assert failure_kind(bad_url) == "permanent"
    for exc in (ServiceRequestError("dns"), ServiceResponseError("reset"), requests.ReadTimeout("slow"),
                TimeoutError(), ConnectionResetError()):
        assert failure_kind(exc) == "transient", exc
    assert failure_kind(ValueError("bug")) == "permanent"
    assert failure_kind(ThrottledError("x")) == "throttled"
    assert failure_kind(TransientServiceError("x")) == "transient"
