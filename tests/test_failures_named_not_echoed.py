"""Smaller findings of issue 9 part 3, each as the pure function that now decides it: a long list in a spec error is
cut, a YAML key given twice is refused with its line, `predict DIR` says it is a directory, a project name in
VISION_PROJECT_ID is blamed on that setting, SDK/OS failures map to the documented kind, and a registered secret is
redacted in every form while checks name the setting without echoing the value."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from urllib.parse import quote

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvops import strict_yaml
from cvops.errors import ConfigurationError, ServiceError, TransientServiceError, from_exception
from cvops.redaction import check_connection_string, check_key, redact, register_secret
from functions.config import load_config
from functions.policy import load_policy
from pipelines import spec as spec_module
from pipelines.policy_suggest import spec_policy
from pipelines.predicting import predict


def _spec(tags: int) -> dict:
    return {"project": {"name": "p", "classification_type": "Multiclass", "domain": "General"},
            "tags": [{"name": f"t{i}"} for i in range(tags)]}


def test_a_spec_with_501_tags_names_the_first_few_and_how_many_more(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(_spec(501)))
    with pytest.raises(ConfigurationError) as refused:
        spec_module.load(path)
    message = str(refused.value)
    assert "501 items ('t0', 't1', 't2', 't3', 't4' and 496 more); at most 500 allowed" in message
    assert len(message) < 300 and "t100" not in message


@pytest.mark.parametrize("text, key, line", [
    ("project:\n  name: p\n  name: q\n", "name", 3),
    ("a: 1\nb:\n  c: 2\na: 3\n", "a", 4),
])
def test_a_yaml_key_given_twice_is_refused_naming_the_key_and_line(text, key, line):
    with pytest.raises(yaml.YAMLError) as refused:
        strict_yaml.safe_load(text)
    assert f"duplicate key {key!r} (line {line}" in str(refused.value)


def test_a_spec_and_a_policy_with_a_duplicate_key_are_refused(tmp_path):
    spec = tmp_path / "p.yaml"
    spec.write_text("project:\n  name: p\n  classification_type: Multiclass\n  domain: General\n  name: q\n"
                    "tags:\n  - name: a\n")
    with pytest.raises(ConfigurationError, match=r"duplicate key 'name' \(line 5; first given at line 2\)"):
        spec_module.load(spec)
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: v1\nmoderation:\n  adult: {reject_above: 0.5}\n  adult: {reject_above: 0.99}\n")
    with pytest.raises(ConfigurationError, match=r"duplicate key 'adult' \(line 4"):
        load_policy(str(policy), tmp_path)


def test_a_json_policy_with_a_duplicate_key_is_refused_inline_and_in_a_file(tmp_path):
    inline = '{"version": "v1", "default_threshold": 0.9, "default_threshold": 0.1}'
    with pytest.raises(ConfigurationError, match=r"inline JSON .*duplicate key 'default_threshold'"):
        load_policy(inline, tmp_path)
    (tmp_path / "policy.json").write_text('{"version": "v1", "moderation": {"adult": {"reject_above": 0.5}, '
                                          '"adult": {"reject_above": 0.99}}}')
    with pytest.raises(ConfigurationError, match=r"policy.json does not parse: duplicate key 'adult'"):
        load_policy("policy.json", tmp_path)


def test_merge_keys_may_still_be_overridden():
    assert strict_yaml.safe_load("base: &b {x: 1}\nother:\n  <<: *b\n  x: 2\n")["other"] == {"x": 2}


def test_a_spec_that_is_not_utf8_is_named_with_the_byte(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_bytes(b"project:\n  name: caf\xe9\n")
    with pytest.raises(ConfigurationError, match=r"is not UTF-8 text \(byte 0xe9 at offset 20\)"):
        spec_module.load(path)


def test_predict_of_a_directory_says_it_is_one_and_what_is_expected(tmp_path):
    with pytest.raises(ConfigurationError) as refused:
        predict(None, "project", "name", str(tmp_path), store=False, policy=spec_policy(None))
    assert "is a directory" in str(refused.value) and "does not exist" not in str(refused.value)
    assert "image file" in str(refused.value)


def test_a_project_name_in_vision_project_id_blames_that_setting():
    env = {"VISION_PREDICTION_ENDPOINT": "http://127.0.0.1:1", "VISION_PROJECT_ID": "scenes",
           "VISION_PUBLISH_NAME": "scenes", "CVOPS_STORAGE": "UseDevelopmentStorage=true"}
    with pytest.raises(ConfigurationError) as refused:
        load_config(env)
    assert refused.value.setting == "VISION_PROJECT_ID" and "VISION_PUBLISH_NAME" not in refused.value.message


@pytest.mark.parametrize("exc, kind", [
    (FileNotFoundError(2, "No such file or directory", "/proc/nope/evaluation.json"), ConfigurationError),
    (PermissionError(13, "Permission denied", "/root/x"), ConfigurationError),
    (ConnectionRefusedError(111, "Connection refused"), TransientServiceError),
    (binascii.Error("Incorrect padding"), ConfigurationError),
    ("latin-1", ConfigurationError),
])
def test_environment_failures_map_to_their_documented_kind(exc, kind):
    if exc == "latin-1":
        try:
            "ключ".encode("latin-1")
        except UnicodeEncodeError as e:
            exc = e
    mapped = from_exception(exc)
    assert type(mapped) is kind, mapped
    assert "\n" not in str(mapped)


def test_a_bug_is_not_mapped():
    assert from_exception(KeyError("x")) is None and from_exception(ValueError("y")) is None


def test_an_http_answer_with_an_error_code_maps_by_its_code():
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

    def error(cls, code, status):
        e = cls(message=f"{code}\nRequestId:1\n<?xml version='1.0'?><Error/>")
        e.error_code, e.status_code = code, status
        return e

    assert isinstance(from_exception(error(ResourceNotFoundError, "ContainerNotFound", 404)), ConfigurationError)
    assert isinstance(from_exception(error(HttpResponseError, "InvalidResourceName", 400)), ConfigurationError)
    assert isinstance(from_exception(error(HttpResponseError, "AuthorizationServiceMismatch", 403)), ServiceError)
    assert isinstance(from_exception(error(ClientAuthenticationError, "AuthenticationFailed", 403)), ServiceError)
    assert isinstance(from_exception(error(HttpResponseError, "ServerBusy", 503)), TransientServiceError)
    assert "<?xml" not in str(from_exception(error(HttpResponseError, "Whatever", 409)))


def test_a_registered_secret_is_redacted_in_every_form(isolated_secret_registry):
    secret = "s3cr3t-k1\ns3cr3t-k2-" + "x" * 8
    register_secret(secret)
    for form in (secret, repr(secret), json.dumps(secret), quote(secret, safe=""), " ".join(secret.split()),
                 base64.b64encode(secret.encode()).decode(), "s3cr3t-k2-xxxxxxxx"):
        assert "s3cr3t" not in redact(f"before {form} after"), form
    assert redact("before k1 after") == "before k1 after"


@pytest.mark.parametrize("value, says", [
    ("k1\nk2", "holds a line break"), ("k1 k2", "holds whitespace"), ("kłucz", "holds a non-ASCII character"),
    ("k\u202ek", "holds a control character"), ("a" * 10_240, "is 10,240 characters long"),
    ("https://x.cognitiveservices.azure.com/", "holds a URL"),
], ids=["newline", "space", "non-ascii", "bidi", "10kb", "url"])
def test_a_key_that_can_never_work_is_refused_naming_the_setting_not_the_value(value, says):
    with pytest.raises(ConfigurationError) as refused:
        check_key("VISION_TRAINING_KEY", value)
    assert str(refused.value).startswith(f"VISION_TRAINING_KEY {says}")
    assert value not in str(refused.value) and repr(value)[1:-1] not in str(refused.value)


def test_surrounding_whitespace_is_forgiven_and_a_connection_string_key_must_be_base64():
    assert check_key("K", "  0123456789abcdef\r\n") == "0123456789abcdef"
    with pytest.raises(ConfigurationError, match="the AccountKey in S is not valid base64"):
        check_connection_string("S", "AccountName=a;AccountKey=abc!;BlobEndpoint=http://h/a")
    assert check_connection_string("S", "AccountName=a;AccountKey=a2V5;") == "AccountName=a;AccountKey=a2V5;"


_ODD_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tail=_ODD_TEXT)
def test_any_registered_secret_is_redacted_in_each_of_its_forms(isolated_secret_registry, tail):
    secret = uuid.uuid4().hex[:8] + tail  # a fresh prefix: one example's secret never overlaps another's
    register_secret(secret)
    raw = secret.encode()
    for form in {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], quote(secret, safe=""), quote(secret),
                 base64.b64encode(raw).decode(), " ".join(secret.split())}:
        assert form not in redact(f"<{form}>"), form


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_ODD_TEXT)
def test_a_key_check_either_accepts_the_stripped_key_or_names_the_setting_without_it(isolated_secret_registry, value):
    try:
        key = check_key("VISION_PREDICTION_KEY", value)
    except ConfigurationError as refused:
        assert str(refused).startswith("VISION_PREDICTION_KEY ")
        if len(value.strip()) >= 4:
            assert value.strip() not in str(refused)
    else:
        assert key == value.strip() and key.isascii() and key.isprintable() and " " not in key
