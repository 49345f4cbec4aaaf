"""The monitoring component's rules and dashboard, checked by Prometheus' own promtool."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from inference_tools.manifests import validation
from inference_tools.manifests.render import Render

pytestmark = pytest.mark.kubernetes
# Grafana's template variables, replaced by values PromQL accepts.
DASHBOARD_VARIABLES = {
    "$__rate_interval": "1m",
    "$namespace": "inference",
    "$model": ".*",
}


def test_prometheus_rules_of_every_render_pass_promtool(
    all_renders: list[Render], tmp_path: Path
) -> None:
    checked = 0
    for render in all_renders:
        groups = validation.rule_groups(render)
        checked += bool(groups)
        work = tmp_path / render.name.replace(":", "-")
        work.mkdir()
        assert validation.promtool_check_rules(groups, work) == [], render.name
    assert checked, "no render has a PrometheusRule"


def test_promtool_check_rejects_a_broken_expression(
    renders_by_name: dict[str, Render], tmp_path: Path
) -> None:
    groups = validation.rule_groups(renders_by_name["gpu"])
    broken = [{"name": "broken", "rules": [{"alert": "Broken", "expr": "sum by (model (up)"}]}]
    assert validation.promtool_check_rules(groups + broken, tmp_path) != []


def _dashboard(render: Render) -> dict:
    config_map = render.one("ConfigMap", "triton-grafana-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    (body,) = config_map["data"].values()
    return json.loads(body)


def test_dashboard_queries_are_valid_promql(
    renders_by_name: dict[str, Render], tmp_path: Path
) -> None:
    dashboard = _dashboard(renders_by_name["gpu"])
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(expressions) >= 8
    rules = []
    for index, expression in enumerate(expressions):
        for variable, value in DASHBOARD_VARIABLES.items():
            expression = expression.replace(variable, value)
        assert "$" not in expression, f"unknown dashboard variable in {expression}"
        # promtool parses expressions only inside rules: one recording rule per query.
        rules.append({"record": f"dashboard:query_{index}", "expr": expression})
    assert validation.promtool_check_rules([{"name": "dashboard", "rules": rules}], tmp_path) == []


def test_dashboard_uses_only_metrics_triton_exports(renders_by_name: dict[str, Render]) -> None:
    dashboard = json.dumps(_dashboard(renders_by_name["gpu"]))
    exported = {
        "nv_inference_request_success",
        "nv_inference_request_failure",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_pending_request_count",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_cpu_utilization",
        "nv_gpu_utilization",
    }
    used = set(re.findall(r"\bnv_[a-z_]+", dashboard))
    assert used <= exported, used - exported
