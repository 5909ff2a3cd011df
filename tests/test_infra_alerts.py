"""The alert rules in infra/modules/alerts.bicep read what the app logs: every field their KQL takes from an outcome
line is one functions/outcome_log.py writes, the marker is the same, and the thresholds are parameters wired from
main.bicep. (No Bicep CLI here: the text is read; checkov parses it in scripts/checkov.sh.)"""

from __future__ import annotations

import re
from pathlib import Path

from functions.outcome_log import MARKER, OUTCOME_FIELDS

INFRA = Path(__file__).resolve().parent.parent / "infra"
ALERTS = (INFRA / "modules" / "alerts.bicep").read_text(encoding="utf-8")
MAIN = (INFRA / "main.bicep").read_text(encoding="utf-8")


def _queries() -> list[str]:
    """The KQL of the rules: the shared `outcomes` variable joined to each rule's query (by its `${outcomes}`)."""
    outcomes = re.search(r"^var outcomes = '(.*)'$", ALERTS, re.M)
    assert outcomes, "alerts.bicep has no `var outcomes = '...'`"
    queries = re.findall(r"^\s*query: '(.*)'$", ALERTS, re.M)
    assert queries, "alerts.bicep has no `query:`"
    return [q.replace("${outcomes}", outcomes.group(1)) for q in queries]


def test_the_alert_queries_read_only_fields_the_app_logs():
    for query in _queries():
        used = set(re.findall(r"\bd\.(\w+)", query))
        assert used, query
        assert used <= set(OUTCOME_FIELDS), f"fields the app never logs: {sorted(used - set(OUTCOME_FIELDS))}"
        assert {"outcome", "slice", "duplicate"} <= used


def test_the_alert_queries_find_outcome_lines_by_the_apps_marker():
    for query in _queries():
        assert f'message startswith "{MARKER} "' in query
        assert f'substring(message, strlen("{MARKER} "))' in query


def test_there_is_one_rule_on_the_review_share_and_one_on_the_quarantine_share():
    assert "Microsoft.Insights/scheduledQueryRules@" in ALERTS
    outcomes = re.findall(r"^\s*outcome: '(\w+)'$", ALERTS, re.M)
    assert sorted(outcomes) == ["quarantine", "review"]
    for query in _queries():
        assert 'tostring(d.outcome) == "${rule.outcome}"' in query


def test_thresholds_and_the_action_group_are_parameters_passed_from_main_bicep():
    for param, default in (("reviewSharePercent", "30"), ("quarantineSharePercent", "5"), ("minImages", "50"),
                           ("actionGroupId", "''")):
        assert re.search(rf"^param {param} \w+ = {re.escape(default)}$", ALERTS, re.M), param
    assert "module alerts 'modules/alerts.bicep'" in MAIN
    for wired in ("appInsightsId: monitoring.outputs.appInsightsId", "reviewSharePercent: reviewShareAlertPercent",
                  "quarantineSharePercent: quarantineShareAlertPercent", "minImages: alertMinImages",
                  "actionGroupId: alertActionGroupId"):
        assert wired in MAIN, wired
    assert "empty(actionGroupId) ? [] :" in ALERTS  # optional: no action group, no notification, still an alert


def test_the_alert_queries_count_sampled_traces_by_their_item_count():
    """host.json samples traces; each kept trace stands for itemCount of them, so count() would undercount images."""
    for query in _queries():
        assert "count()" not in query and "countif(" not in query
        assert "sum(itemCount)" in query and "sumif(itemCount," in query
