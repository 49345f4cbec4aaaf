"""The recording rules, as a team's overlay renders them (its own namespace, namePrefix and
release), evaluated by a real Prometheus scraping a real Triton that serves a repository of two
ensembles and a plain model under names the rules never mention.

The local series get the ServiceMonitor's labels from inference_tools.autoscaling.servicemonitor,
which tests/e2e/test_monitoring.py holds equal to the real operator's on a real pod.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from inference_tools.autoscaling import rendered_settings
from inference_tools.autoscaling.servicemonitor import LocalTarget, scrape_configs
from inference_tools.local_server import LocalTritonServer
from inference_tools.prometheus_runner import LocalPrometheus, find_prometheus
from prometheus_api_client import PrometheusConnect

from tests.teams.foreign_repository import build_foreign_repository

pytestmark = [pytest.mark.server, pytest.mark.slow]
TEAM_A = Path(__file__).parent / "consumer" / "team-a"
QUEUE = "namespace_service_pod:triton_queue_time_per_request_us:rate1m"
PENDING = "namespace_service_pod:triton_pending_requests:avg_over_time30s"
POD = "team-a-triton-local-0"


def _load(url: str, model: str, inputs: list[dict], stop_at: float) -> None:
    body = json.dumps({"inputs": inputs}).encode()
    while time.monotonic() < stop_at:
        request = urllib.request.Request(f"{url}/v2/models/{model}/infer", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=30) as reply:
            reply.read()


def _value(prometheus: PrometheusConnect, query: str, at: float) -> float | None:
    result = prometheus.custom_query(query, params={"time": at})
    return float(result[0]["value"][1]) if result else None


def test_signals_follow_the_busiest_composing_model_under_any_name(tmp_path: Path) -> None:
    find_prometheus()  # missing: a skip here, a failure in CI (the root conftest)
    rendered = rendered_settings.render(TEAM_A)
    rules = rendered_settings.prometheus_rule_file(rendered)
    rules = rendered_settings.with_evaluation_interval(rules, "1s")
    repository = build_foreign_repository(tmp_path / "models", upper_delay_ms=30)
    with LocalTritonServer(repository) as server:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": scrape_configs(
                rendered, [LocalTarget(server.metrics_url.split("/")[2], POD)], "1s"
            ),
        }
        with LocalPrometheus(config, {"rules.yaml": rules}, work_dir=tmp_path / "prom") as prom:
            prometheus = PrometheusConnect(url=prom.url, disable_ssl=True)
            url = f"http://{server.http_url}"
            words = [{"name": "WORDS", "shape": [1, 1], "datatype": "BYTES", "data": ["hi"]}]
            numbers = [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]
            # Long enough for the pending rule's 15 s subquery steps to land inside the load.
            stop_at = time.monotonic() + 30
            threads = [
                threading.Thread(target=_load, args=(url, "shout_length", words, stop_at))
                for _ in range(6)
            ] + [
                threading.Thread(target=_load, args=(url, "doubler", numbers, stop_at))
                for _ in range(2)
            ]
            for thread in threads:
                thread.start()
            time.sleep(25)
            at = time.time() - 1
            for thread in threads:
                thread.join()
            selector = f'{{namespace="ml-serving",service="team-a-triton",pod="{POD}"}}'
            signal = _value(prometheus, f"{QUEUE}{selector}", at)
            pending = _value(prometheus, f"max_over_time({PENDING}{selector}[20s])", at)
            # The per-model ratios at the instant the rule was evaluated, not at `at`: on a
            # loaded machine the last evaluation may lie seconds before it, and the rates move.
            evaluated_at = _value(prometheus, f"timestamp({QUEUE}{selector})", at) or at
            per_model = {
                model: _value(
                    prometheus,
                    f'sum(rate(nv_inference_queue_duration_us{{model="{model}"}}[1m]))'
                    f' / sum(rate(nv_inference_request_success{{model="{model}"}}[1m]))',
                    evaluated_at,
                )
                for model in ("upper", "length", "shout_length", "doubler")
            }
    assert signal is not None and pending is not None, (signal, pending)
    # The pod reads the model that queues longest: upper, 6 clients behind a 30 ms step.
    assert per_model["upper"] is not None and per_model["upper"] > 5_000, per_model
    assert signal == pytest.approx(per_model["upper"], rel=0.1)
    # Neither the ensembles' near-zero queue nor the cheap plain model's requests pull it down.
    assert per_model["shout_length"] < signal / 100 and per_model["doubler"] < signal
    # Requests waiting in models the rules never name are counted: 6 clients queue behind one
    # 30 ms instance (1.4 to 5 seen; under 2 only when other work starves the load's clients).
    assert pending >= 1
