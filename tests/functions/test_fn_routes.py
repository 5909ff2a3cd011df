"""Routes are owned once: functions/routes.py says which container and setting each outcome has (issue 12).

The settings catalogue, the configuration, the handler's missing-container message, the backlog queue and the overlap
check read that table; these tests show they agree with it and that no other module spells a container setting.
"""

from __future__ import annotations

import ast
import logging
import typing
from pathlib import Path

import pytest

from cvops.errors import ConfigurationError
from functions import routes, settings
from functions.config import load_config, relevant_environment, route_location
from functions.naming import Location, check_disjoint
from functions.policy import Outcome

ROOT = Path(__file__).resolve().parents[2]

BASE_ENV = {
    "VISION_PREDICTION_ENDPOINT": "https://example.cognitiveservices.azure.com/",
    "VISION_PROJECT_ID": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "VISION_PUBLISH_NAME": "prod",
    "CVOPS_STORAGE": "UseDevelopmentStorage=true",
}


def test_every_policy_outcome_has_exactly_one_route():
    assert set(routes.BY_OUTCOME) == set(typing.get_args(Outcome))
    assert len({route.setting for route in routes.ROUTES}) == len(routes.ROUTES)


def test_accepted_lands_in_the_accepted_container_under_its_tag():
    route = routes.BY_OUTCOME["accepted"]
    assert (route.key, route.setting, route.default, route.tagged) == (
        "accepted", "CVOPS_ACCEPTED_CONTAINER", "accepted", True)


def test_each_route_key_its_setting_and_its_default_container_agree():
    """The names a newcomer reads in a record, a setting and a container are one word per route."""
    for route in routes.ROUTES:
        assert route.setting == f"CVOPS_{route.key.upper()}_CONTAINER" and route.default == route.key
        assert route.outcome in (None, route.key)


def test_the_former_setting_alone_is_used_with_one_warning_naming_both(caplog):
    with caplog.at_level(logging.WARNING, logger="cvops.functions"):
        config = load_config({**BASE_ENV, "CVOPS_CLASSIFIED_CONTAINER": "classified/old"})
    assert config.destination("accepted") == Location("classified", "old/")
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "CVOPS_CLASSIFIED_CONTAINER" in warning and "CVOPS_ACCEPTED_CONTAINER" in warning and "rename" in warning


def test_the_former_and_the_new_setting_disagreeing_is_an_error_naming_both_and_what_to_do():
    with pytest.raises(ConfigurationError) as caught:
        load_config({**BASE_ENV, "CVOPS_CLASSIFIED_CONTAINER": "classified", "CVOPS_ACCEPTED_CONTAINER": "accepted"})
    message = str(caught.value)
    assert "CVOPS_CLASSIFIED_CONTAINER='classified'" in message and "CVOPS_ACCEPTED_CONTAINER='accepted'" in message
    assert "delete CVOPS_CLASSIFIED_CONTAINER" in message and caught.value.setting == "CVOPS_ACCEPTED_CONTAINER"


def test_the_former_and_the_new_setting_agreeing_is_accepted():
    config = load_config({**BASE_ENV, "CVOPS_CLASSIFIED_CONTAINER": "kept/", "CVOPS_ACCEPTED_CONTAINER": "kept"})
    assert config.destination("accepted") == Location("kept")


def test_a_bad_former_setting_is_named_by_its_own_name():
    with pytest.raises(ConfigurationError, match="CVOPS_CLASSIFIED_CONTAINER='Not_A_Container'"):
        load_config({**BASE_ENV, "CVOPS_CLASSIFIED_CONTAINER": "Not_A_Container"})


def test_the_app_context_is_rebuilt_when_the_former_setting_changes():
    """The cache key of the app context holds the former names too: changing one must not keep the old routes."""
    before = relevant_environment(BASE_ENV)
    assert relevant_environment({**BASE_ENV, "CVOPS_CLASSIFIED_CONTAINER": "classified"}) != before


def test_the_settings_catalogue_documents_each_route_with_its_default():
    for route in routes.ROUTES:
        setting = settings.BY_NAME[route.setting]
        assert (setting.default, setting.doc, setting.required) == (route.default, route.doc, False)


def test_the_configuration_reads_each_route_from_its_setting_and_default():
    defaults = load_config(BASE_ENV)
    for route in routes.ROUTES:
        assert str(getattr(defaults, route.key)) == route.default
    moved = load_config({**BASE_ENV, **{r.setting: f"x-{r.default}" for r in routes.ROUTES}})
    for outcome, route in routes.BY_OUTCOME.items():
        assert moved.destination(outcome) == Location(f"x-{route.default}")


@pytest.mark.parametrize("route", routes.OUTPUTS, ids=lambda r: r.key)
def test_an_output_in_the_incoming_container_is_refused_naming_its_setting(route):
    with pytest.raises(ConfigurationError, match=route.setting):
        load_config({**BASE_ENV, route.setting: "incoming"})


def test_the_overlap_check_names_the_settings_of_the_table():
    with pytest.raises(ConfigurationError, match=r"CVOPS_REVIEW_CONTAINER.*CVOPS_ACCEPTED_CONTAINER"):
        check_disjoint({"accepted": Location("out"), "review": Location("out", "r/")})


def test_no_module_but_the_routes_table_spells_a_container_setting():
    """Container settings are named by the table only: no literal ``CVOPS_..._CONTAINER`` and no f-string building one
    in the app's code (the blob trigger's ``%CVOPS_INCOMING_CONTAINER%`` binding expression is the host's syntax)."""
    offending = []
    for path in [*sorted((ROOT / "functions").glob("*.py")), ROOT / "function_app.py"]:
        if path.name == "routes.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            elif isinstance(node, ast.JoinedStr):
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant)) + "{}"
            else:
                continue
            if "_CONTAINER" in text and "%CVOPS_INCOMING_CONTAINER%" not in text and "\n" not in text:
                offending.append(f"{path.name}:{node.lineno}: {text!r}")
    assert not offending


def test_two_former_names_that_disagree_are_an_error_naming_both():
    """The rule holds for any number of former names: two of them naming different containers cannot both win."""
    route = routes.Route("accepted", "CVOPS_ACCEPTED_CONTAINER", "accepted", "doc", legacy_settings=("OLD_A", "OLD_B"))
    with pytest.raises(ConfigurationError, match=r"OLD_A='one' and OLD_B='two'") as caught:
        route_location(route, {"OLD_A": "one", "OLD_B": "two"})
    assert caught.value.hint.endswith("delete OLD_A and OLD_B")
    assert route_location(route, {"OLD_A": "same", "OLD_B": "same/"}) == Location("same")
