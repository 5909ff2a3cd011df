"""cvops.retry, cvops.errors and cvops.clients: the retry loop over real SDK failures (pacing: test_pacing.py,
classification: test_failures.py).

Exceptions are built the way the SDKs build them (a real ``requests.Response`` handed to the SDK's exception class
with its deserializer), or produced by the SDK itself against a small scripted HTTP server on a free port. Time is a
fake clock, so backoffs of minutes take none; only the thread-safety test and the emulator tests use real time.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import requests
from azure.cognitiveservices.vision.customvision.training.models import CustomVisionErrorException

from cvops import clients
from cvops.errors import ConfigurationError, CvopsError, ServiceError, ThrottledError, TransientServiceError
from cvops.failures import failure_kind, retry_after_seconds
from cvops.pacing import Pacer
from cvops.retry import RetryPolicy, call

from .retry_fakes import ENDPOINT, SECRET, FakeClock, closed_port, cv_error, raising
from .scripted_http import Answer, Request, serving

# --- errors -------------------------------------------------------------------------------------------------------

def test_error_str_is_one_line_with_the_hint() -> None:
    error = ServiceError("upload of 'a.jpg' failed:\n HTTP 400", code="BadRequestImageFormat", status=400,
                         hint="Convert it to JPEG.")
    assert str(error) == "upload of 'a.jpg' failed: HTTP 400. Convert it to JPEG."
    assert (error.code, error.status) == ("BadRequestImageFormat", 400)
    assert isinstance(ThrottledError("x"), TransientServiceError)
    assert ConfigurationError("no key", setting="CV_TRAINING_KEY").setting == "CV_TRAINING_KEY"


# --- call with a fake clock ---------------------------------------------------------------------------------------

def run(fn: Callable[[], object], clock: FakeClock, **kwargs) -> object:
    return call(fn, sleep=clock.sleep, clock=clock, uniform=lambda a, b: b, **kwargs)


def test_call_returns_the_result_of_a_call_that_succeeds() -> None:
    clock = FakeClock()
    assert run(raising(result=42), clock, what="get project") == 42
    assert clock.sleeps == []


def test_call_without_a_pacer_waits_the_retry_after_of_each_429() -> None:
    clock = FakeClock()
    seen: list[tuple[int, str, float]] = []
    fn = raising(cv_error(429, headers={"Retry-After": "2"}), cv_error(429, message="Please retry after 1 second"))
    result = run(fn, clock, what="classify a.jpg",
                 on_retry=lambda n, exc, delay: seen.append((n, type(exc).__name__, delay)))
    assert result == "ok"
    assert fn.calls == 3
    assert seen == [(1, "CustomVisionErrorException", 2.0), (2, "CustomVisionErrorException", 1.0)]
    assert clock.sleeps == [2.0, 1.0]


def test_call_with_a_pacer_waits_what_the_pacer_holds_everyone_for() -> None:
    clock = FakeClock()
    pacer = Pacer(10, headroom=0, clock=clock, sleep=clock.sleep)
    holds: list[float] = []
    pacer.throttled = lambda s, real=pacer.throttled: holds.append(real(s)) or holds[-1]  # type: ignore[method-assign]
    fn = raising(cv_error(429, message="Please retry after 1 second"))
    assert run(fn, clock, what="classify a.jpg", pacer=pacer) == "ok"
    assert len(holds) == 1 and holds[0] < 1.0  # the pacer's own window explained it: no whole second lost
    assert clock.sleeps == holds
    interval = 1 / pacer.rate
    assert pacer.wait() == pytest.approx(interval, rel=0.01)  # and the next caller was held with it, then paced


def test_a_long_retry_after_holds_off_other_callers_of_the_same_pacer_in_full() -> None:
    clock = FakeClock()
    pacer = Pacer(100, headroom=0, clock=clock, sleep=clock.sleep)
    run(raising(cv_error(429, headers={"Retry-After": "5"})), clock, what="classify", pacer=pacer)
    assert clock.sleeps == [5.0]
    assert clock.now == pytest.approx(5.0)  # the retry went as soon as the hold ended
    interval = 1 / pacer.rate
    assert pacer.wait() == pytest.approx(interval, rel=0.01)


def test_transient_errors_back_off_exponentially_up_to_the_cap_then_raise_naming_the_call() -> None:
    clock = FakeClock()
    failures = [cv_error(503, "ServiceUnavailable", "busy") for _ in range(10)]
    policy = RetryPolicy(max_attempts=6, base_delay=1.0, max_delay=5.0, max_total=1000)
    with pytest.raises(TransientServiceError) as info:
        run(raising(*failures), clock, what="train project 'scenes'", policy=policy)
    assert clock.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]
    error = info.value
    assert not isinstance(error, ThrottledError)
    assert (error.status, error.code, error.attempts) == (503, "ServiceUnavailable", 6)
    assert "train project 'scenes'" in str(error) and "6 attempts" in str(error)
    assert error.__cause__ is failures[5]


def test_backoff_jitter_stays_within_the_exponential_bound() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=20, max_total=1000)
    with pytest.raises(TransientServiceError):
        call(raising(*[cv_error(500) for _ in range(5)]), what="x", policy=policy, sleep=clock.sleep, clock=clock)
    assert len(clock.sleeps) == 4
    for n, delay in enumerate(clock.sleeps, start=1):
        assert 0 <= delay <= 0.5 * 2 ** (n - 1)


def test_429_without_any_hint_waits_at_least_half_the_backoff_step() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=3, base_delay=2.0, max_total=1000)
    call(raising(cv_error(429), cv_error(429)), what="x", policy=policy, sleep=clock.sleep, clock=clock,
         uniform=lambda a, b: a)
    assert clock.sleeps == [1.0, 2.0]


def test_throttled_until_the_time_budget_runs_out_raises_throttled_error_with_the_tier_hint() -> None:
    clock = FakeClock()
    failures = [cv_error(429, headers={"Retry-After": "50"}) for _ in range(6)]
    with pytest.raises(ThrottledError) as info:
        run(raising(*failures), clock, what="classify b.jpg", policy=RetryPolicy(max_total=120))
    assert clock.sleeps == [50.0, 50.0]  # a third wait would end past 120 s: give up before sleeping it
    assert info.value.attempts == 3 and info.value.status == 429
    assert "classify b.jpg" in str(info.value) and "pricing tier" in str(info.value)


def test_401_raises_at_once_naming_the_key_and_endpoint_without_the_key() -> None:
    clock = FakeClock()
    fn = raising(cv_error(401, "Unauthorized", "Access denied due to invalid subscription key or wrong API endpoint."))
    with pytest.raises(ServiceError) as info:
        run(fn, clock, what="list projects")
    assert fn.calls == 1 and clock.sleeps == []
    text = str(info.value)
    assert "list projects" in text and "training key" in text and ENDPOINT in text
    assert SECRET not in text
    assert info.value.status == 401


def test_permanent_error_carries_the_service_code() -> None:
    with pytest.raises(ServiceError) as info:
        run(raising(cv_error(400, "BadRequestImageFormat", "Bad image format")), FakeClock(), what="upload x.tif")
    assert (info.value.code, info.value.status) == ("BadRequestImageFormat", 400)
    assert str(info.value).startswith("upload x.tif failed: HTTP 400 BadRequestImageFormat: Bad image format")


def test_a_bug_in_the_call_propagates_unchanged_and_is_not_retried() -> None:
    fn = raising(KeyError("id"))
    with pytest.raises(KeyError):
        run(fn, FakeClock(), what="x")
    assert fn.calls == 1


def test_cvops_errors_from_inside_pass_through_untouched() -> None:
    inner = ThrottledError("inner call gave up")
    fn = raising(inner)
    with pytest.raises(ThrottledError) as info:
        run(fn, FakeClock(), what="outer")
    assert info.value is inner and fn.calls == 1


def test_pacer_wait_runs_before_every_attempt() -> None:
    clock = FakeClock()
    pacer = Pacer(1, headroom=0, clock=clock, sleep=clock.sleep)
    waits: list[float] = []
    pacer.wait = lambda real=pacer.wait: waits.append(real()) or waits[-1]  # type: ignore[method-assign]
    run(raising(cv_error(503), cv_error(503)), clock, what="x", pacer=pacer,
        policy=RetryPolicy(base_delay=0.1, max_total=1000))
    assert len(waits) == 3


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ConfigurationError):
        RetryPolicy(max_total=-1)


# --- call over real HTTP (the SDK talks to a scripted local server) ----------------------------------------------

@dataclass
class Script:
    """What the server answers, in order: (status, headers, body) or "reset" (read the request, close, no answer)."""

    answers: list = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def scripted() -> Iterator[tuple[str, Script]]:
    script = Script()

    def answer(request: Request) -> Answer:
        script.requests.append(f"{request.method} {request.path}")
        reply = script.answers.pop(0) if script.answers else (200, {}, [])
        return None if reply == "reset" else reply

    with serving(answer) as url:
        yield url, script


def test_clients_hand_a_get_5xx_to_the_sdk_with_its_headers(scripted) -> None:
    endpoint, script = scripted
    script.answers = [(503, {"Retry-After": "3"}, {"code": "ServiceUnavailable", "message": "busy"})]
    client = clients.training_client(endpoint, SECRET)
    with pytest.raises(CustomVisionErrorException) as info:
        client.get_projects()
    assert failure_kind(info.value) == "transient" and retry_after_seconds(info.value) == 3.0
    assert len(script.requests) == 1  # msrest did not retry on its own


def test_call_rides_out_429_and_503_from_a_real_server(scripted) -> None:
    endpoint, script = scripted
    script.answers = [(429, {"Retry-After": "1"}, {"code": "TooManyRequests", "message": "Please retry after 1 second"}),
                      (503, {}, {"code": "ServiceUnavailable", "message": "busy"}),
                      (200, {}, [])]
    client = clients.training_client(endpoint, SECRET)
    clock = FakeClock()
    assert run(client.get_projects, clock, what="list projects") == []
    assert len(script.requests) == 3
    assert clock.sleeps[0] == 1.0


def test_a_get_5xx_from_a_plain_msrest_client_is_still_transient(scripted) -> None:
    """Clients built elsewhere (retries=0 only) turn a GET 5xx into a ClientRequestError(RetryError)."""
    from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
    from msrest.authentication import ApiKeyCredentials

    endpoint, script = scripted
    script.answers = [(502, {}, {"code": "BadGateway"}), (200, {}, [])]
    client = CustomVisionTrainingClient(endpoint, ApiKeyCredentials(in_headers={"Training-key": SECRET}))
    client.config.retry_policy.retries = 0
    assert run(client.get_projects, FakeClock(), what="list projects") == []


@pytest.mark.parametrize("status, sent", [(503, 2), (502, 1), (500, 1), (504, 1)])
def test_a_non_idempotent_post_is_repeated_only_after_a_front_end_refusal(scripted, status, sent) -> None:
    """503 (busy) means the request was refused; a 500/502/504 may come after the backend acted (a project created)."""
    endpoint, script = scripted
    script.answers = [(status, {}, {"code": "Error", "message": "x"}),
                      (200, {}, {"id": "00000000-0000-0000-0000-000000000001", "name": "p"})]
    client = clients.training_client(endpoint, SECRET)
    with contextlib.suppress(CvopsError):  # after a 5xx that may have been applied, the call gives up
        run(lambda: client.create_project("p"), FakeClock(), what="create project", idempotent=False)
    assert sum(r.startswith("POST") for r in script.requests) == sent


def test_a_retry_after_beyond_the_budget_does_not_hold_the_shared_pacer() -> None:
    clock = FakeClock()
    pacer = Pacer(10, clock=clock, sleep=clock.sleep)
    with pytest.raises(ThrottledError):
        run(raising(cv_error(429, headers={"Retry-After": "86400"})), clock, what="classify", pacer=pacer,
            policy=RetryPolicy(max_total=120))
    before = clock()
    pacer.wait()
    assert clock() - before < 1.0, "one absurd Retry-After stalled the next, unrelated call"


def test_401_from_a_real_server_names_the_key_and_the_endpoint(scripted) -> None:
    endpoint, script = scripted
    script.answers = [(401, {}, {"code": "Unauthorized", "message": "Access denied due to invalid subscription key"})]
    client = clients.prediction_client(endpoint, SECRET)
    with pytest.raises(ServiceError) as info:
        run(lambda: client.classify_image("project", "published", b"x"), FakeClock(), what="classify a.jpg")
    assert "prediction key" in str(info.value) and endpoint in str(info.value) and SECRET not in str(info.value)


def test_a_non_idempotent_call_cut_off_after_sending_is_not_repeated(scripted) -> None:
    endpoint, script = scripted
    script.answers = ["reset"]
    client = clients.training_client(endpoint, SECRET)
    with pytest.raises(TransientServiceError) as info:
        run(lambda: client.train_project("p"), FakeClock(), what="train project 'p'", idempotent=False)
    assert len(script.requests) == 1
    assert "may already have applied it" in str(info.value)


def test_an_idempotent_call_cut_off_after_sending_is_repeated(scripted) -> None:
    endpoint, script = scripted
    script.answers = ["reset", (200, {}, [])]
    client = clients.training_client(endpoint, SECRET)
    assert run(client.get_projects, FakeClock(), what="list projects") == []
    assert len(script.requests) == 2


def test_a_non_idempotent_call_is_repeated_when_the_server_refused_it(scripted) -> None:
    endpoint, script = scripted
    iteration = {"id": "00000000-0000-0000-0000-000000000001", "status": "Training"}
    script.answers = [(503, {}, {"code": "ServiceUnavailable"}), (429, {"Retry-After": "1"}, {}), (200, {}, iteration)]
    client = clients.training_client(endpoint, SECRET)
    result = run(lambda: client.train_project("p"), FakeClock(), what="train", idempotent=False)
    assert result.status == "Training" and len(script.requests) == 3


def test_a_non_idempotent_call_is_repeated_when_the_connection_was_refused() -> None:
    client = clients.training_client(f"http://127.0.0.1:{closed_port()}", SECRET)
    fn_calls = []

    def train() -> object:
        fn_calls.append(1)
        return client.train_project("p")

    with pytest.raises(TransientServiceError) as info:
        run(train, FakeClock(), what="train", idempotent=False, policy=RetryPolicy(max_attempts=3))
    assert len(fn_calls) == 3 and info.value.attempts == 3
    assert "127.0.0.1" in str(info.value)


# --- clients ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", ["", "contoso.cognitiveservices.azure.com", "ftp://x", "https://x/?a=1"])
def test_client_builders_reject_endpoints_that_are_not_urls(endpoint: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        clients.training_client(endpoint, SECRET)
    assert "endpoint" in info.value.setting


def test_client_builders_reject_an_empty_key() -> None:
    with pytest.raises(ConfigurationError) as info:
        clients.prediction_client(ENDPOINT, " ")
    assert info.value.setting == "Custom Vision prediction key"


def test_client_builders_turn_msrest_retries_off() -> None:
    for client in (clients.training_client(ENDPOINT + "/", SECRET), clients.prediction_client(ENDPOINT, SECRET),
                   clients.computer_vision_client(ENDPOINT, SECRET)):
        assert client.config.retry_policy.retries == 0
        assert client.config.endpoint == ENDPOINT


def test_storage_builders_need_exactly_one_way_in_and_never_echo_a_connection_string() -> None:
    with pytest.raises(ConfigurationError):
        clients.blob_service_client()
    with pytest.raises(ConfigurationError):
        clients.queue_service_client(connection_string="a", account_url="https://a.queue.core.windows.net")
    with pytest.raises(ConfigurationError) as info:
        clients.blob_service_client(connection_string=f"AccountKey={SECRET};nonsense")
    assert SECRET not in str(info.value) and info.value.setting == "connection string"


def test_storage_builder_with_an_account_url_uses_the_given_token_credential() -> None:
    class Token:
        def get_token(self, *scopes, **kwargs):  # never called: building a client does not authenticate
            raise AssertionError("no network in this test")

    credential = Token()
    client = clients.blob_service_client(account_url="https://acct.blob.core.windows.net", credential=credential)
    assert client.credential is credential and client.account_name == "acct"


@pytest.mark.azurite
def test_read_only_sas_url_reads_the_blob_and_cannot_write_it(azurite) -> None:
    service = clients.blob_service_client(connection_string=azurite.connection_string)
    container = service.get_container_client("sas-test")
    if not container.exists():
        container.create_container()
    blob = container.get_blob_client("training/beach/a.jpg")
    blob.upload_blob(b"image bytes", overwrite=True)
    url = clients.read_only_blob_sas_url(blob, minutes=5)
    assert "sp=r" in url and "sig=" in url
    assert requests.get(url, timeout=10).content == b"image bytes"
    put = requests.put(url, data=b"overwrite", headers={"x-ms-blob-type": "BlockBlob"}, timeout=10)
    assert put.status_code == 403
    assert blob.download_blob().readall() == b"image bytes"


def test_read_only_sas_url_needs_a_signing_credential() -> None:
    from azure.storage.blob import BlobClient

    anonymous = BlobClient.from_blob_url("https://acct.blob.core.windows.net/c/b.jpg")
    with pytest.raises(ConfigurationError) as info:
        clients.read_only_blob_sas_url(anonymous)
    assert "c/b.jpg" in str(info.value)
    with pytest.raises(ConfigurationError):
        clients.read_only_blob_sas_url(anonymous, minutes=0)


def test_errors_are_cvops_errors() -> None:
    for cls in (ConfigurationError, ServiceError, TransientServiceError, ThrottledError):
        assert issubclass(cls, CvopsError)


# --- against the real local Custom Vision service -----------------------------------------------------------------

def _published_project(service) -> tuple[str, str]:
    """Create, train and publish a small two-tag project on the local service; return (project id, publish name)."""
    from azure.cognitiveservices.vision.customvision.training.models import ImageFileCreateBatch, ImageFileCreateEntry

    from devkit import scenes

    trainer = clients.training_client(service.endpoint, service.training_key)
    project = trainer.create_project("pacing")
    entries = []
    for name in ("beach", "forest"):
        tag = trainer.create_tag(project.id, name)
        entries += [ImageFileCreateEntry(name=f"{name}-{i}.jpg", contents=scenes.generate(name, i, size=(256, 192)),
                                         tag_ids=[tag.id]) for i in range(6)]
    batch = trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=entries))
    assert batch.is_batch_successful
    iteration = trainer.train_project(project.id)
    deadline = time.monotonic() + 120
    while iteration.status not in ("Completed", "Failed"):
        assert time.monotonic() < deadline, "training did not finish in 120 s"
        time.sleep(0.3)
        iteration = trainer.get_iteration(project.id, iteration.id)
    assert iteration.status == "Completed"
    trainer.publish_iteration(project.id, iteration.id, "pacing", service.prediction_resource_id)
    return project.id, "pacing"


def _hammer(service, project_id: str, publish_name: str, pacer: Pacer | None, *, calls: int, threads: int):
    """Classify from several threads at once; return (results, 429s seen through on_retry)."""
    from devkit import scenes

    predictor = clients.prediction_client(service.endpoint, service.prediction_key)
    image = scenes.generate("beach", 1000, size=(256, 192))
    throttled: list[float] = []
    results: list[object] = []
    lock = threading.Lock()

    def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
        if failure_kind(exc) == "throttled":
            with lock:
                throttled.append(delay)

    def worker(n: int) -> None:
        for _ in range(n):
            result = call(lambda: predictor.classify_image_with_no_store(project_id, publish_name, image),
                          what="classify beach.jpg", pacer=pacer, on_retry=on_retry)
            with lock:
                results.append(result)

    pool = [threading.Thread(target=worker, args=(calls // threads,)) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    return results, throttled


@pytest.mark.emulator
@pytest.mark.slow
def test_unpaced_429s_are_retried_and_pacing_at_the_tier_rate_avoids_them(start_local_cv) -> None:
    service = start_local_cv(prediction_tps=5)
    project_id, publish_name = _published_project(service)

    results, throttled = _hammer(service, project_id, publish_name, None, calls=15, threads=3)
    assert len(results) == 15 and all(r.predictions for r in results)
    assert throttled, "15 unpaced calls at once should exceed 5/s and see 429s"
    assert all(delay >= 1.0 for delay in throttled)  # the service's Retry-After was honoured

    time.sleep(1.1)  # let the service's one-second window empty
    results, throttled = _hammer(service, project_id, publish_name, Pacer(5), calls=15, threads=3)
    assert len(results) == 15 and all(r.predictions for r in results)
    assert throttled == []
