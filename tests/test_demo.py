"""The demo's own logic: the routing policy it derives from an evaluation is what an operator would write."""

from __future__ import annotations

from devkit.demo import SCENES_SPEC, routing_policy
from functions.policy import parse_policy


def test_demo_policy_takes_met_recommendations_and_keeps_the_spec_threshold_otherwise():
    evaluation = {"iteration": "Iteration 3", "threshold_sweep": {
        "beach": {"recommended_threshold": 0.8731, "met": True},
        "forest": {"recommended_threshold": 0.99, "met": False},
    }}
    policy = routing_policy(SCENES_SPEC, evaluation)
    assert policy["tags"]["beach"] == {"threshold": 0.87}
    assert policy["tags"]["forest"] == {"threshold": 0.5}   # target not met: the spec's default stays
    assert policy["tags"]["city"] == {"threshold": 0.55}    # no recommendation: the spec's own threshold
    assert policy["version"] == "scenes-iteration-3"
    parse_policy(policy, origin="demo")  # the Function App accepts it
