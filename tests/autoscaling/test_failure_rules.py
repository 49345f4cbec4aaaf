"""The triton.failures group halves exactly the ensembles' failure counters."""

from __future__ import annotations

import re

from tests.autoscaling.test_promtool_rules import ensemble_models, rule_file  # noqa: F401


def test_failure_rules_select_exactly_the_ensembles(rule_file: dict) -> None:  # noqa: F811
    (group,) = [g for g in rule_file["groups"] if g["name"] == "triton.failures"]
    selected = {m for rule in group["rules"] for m in re.findall(r'model=~"([^"]*)"', rule["expr"])}
    assert selected == {"|".join(sorted(ensemble_models()))}
