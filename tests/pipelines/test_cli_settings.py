"""Settings: the quickstart names, flags over environment over .env, and a missing one named."""

from __future__ import annotations

import pytest

from cvops.errors import ConfigurationError
from pipelines import config


def test_flags_override_the_environment_which_overrides_dotenv():
    s = config.resolve({"VISION_TRAINING_ENDPOINT": "https://env"},
                       {"VISION_TRAINING_ENDPOINT": "https://dotenv", "VISION_TRAINING_KEY": "k-dotenv"},
                       {"VISION_TRAINING_ENDPOINT": None})
    assert s.get("VISION_TRAINING_ENDPOINT") == "https://env"
    assert s.get("VISION_TRAINING_KEY") == "k-dotenv"
    s = config.resolve({"VISION_TRAINING_ENDPOINT": "https://env"}, {},
                       {"VISION_TRAINING_ENDPOINT": "https://flag"})
    assert s.get("VISION_TRAINING_ENDPOINT") == "https://flag"


def test_a_missing_setting_is_named_with_what_it_is():
    with pytest.raises(ConfigurationError) as err:
        config.resolve({}).require(config.PREDICTION_RESOURCE_ID)
    assert "VISION_PREDICTION_RESOURCE_ID is not set" in str(err.value)
    assert err.value.setting == "VISION_PREDICTION_RESOURCE_ID"


def test_storage_prefers_a_connection_string_and_names_both_when_neither_is_set():
    both = config.resolve({"AZURE_STORAGE_CONNECTION_STRING": "cs", "AZURE_STORAGE_ACCOUNT_URL": "https://a"})
    assert both.storage() == {"connection_string": "cs"}
    assert config.resolve({"AZURE_STORAGE_ACCOUNT_URL": "https://a"}).storage() == {"account_url": "https://a"}
    with pytest.raises(ConfigurationError, match="AZURE_STORAGE_CONNECTION_STRING nor AZURE_STORAGE_ACCOUNT_URL"):
        config.resolve({}).storage()


def test_the_tier_sets_the_rates_and_an_unknown_tier_is_refused():
    assert config.resolve({}).rates == config.TIERS["S0"]
    assert config.resolve({"CVOPS_TIER": "f0"}).rates.train_project == 2
    with pytest.raises(ConfigurationError, match="not a Custom Vision tier"):
        _ = config.resolve({"CVOPS_TIER": "S9"}).rates


def test_redacted_settings_never_show_keys():
    s = config.resolve({"VISION_TRAINING_KEY": "secret-value", "VISION_TRAINING_ENDPOINT": "https://e"})
    assert "secret-value" not in str(s.redacted())


def test_a_dotenv_file_is_read_and_a_named_missing_one_is_an_error(tmp_path):
    env = tmp_path / ".env"
    env.write_text("VISION_TRAINING_KEY=from-file\n")
    assert config.dotenv_file_values(env)["VISION_TRAINING_KEY"] == "from-file"
    with pytest.raises(ConfigurationError, match="does not exist"):
        config.dotenv_file_values(tmp_path / "missing.env")


def test_the_backlog_queue_address_comes_from_the_same_storage_settings():
    blob_only = "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:1/a;"
    with pytest.raises(ConfigurationError) as refused:
        config.Settings({config.STORAGE_CONNECTION_STRING: blob_only}).queue_storage()
    assert refused.value.setting == config.STORAGE_CONNECTION_STRING and "QueueEndpoint" in str(refused.value)
    both = blob_only + "QueueEndpoint=http://127.0.0.1:2/a;"
    assert config.Settings({config.STORAGE_CONNECTION_STRING: both}).queue_storage() == {"connection_string": both}
    derived = config.Settings({config.STORAGE_ACCOUNT_URL: "https://acct.blob.core.windows.net"}).queue_storage()
    assert derived == {"account_url": "https://acct.queue.core.windows.net"}
    with pytest.raises(ConfigurationError):
        config.Settings({config.STORAGE_ACCOUNT_URL: "http://127.0.0.1:10000/devstoreaccount1"}).queue_storage()
