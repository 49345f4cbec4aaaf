"""Reading Triton's Prometheus metrics endpoint: per-model counters and gauges.

The text format is parsed by the pod hooks' parser (`pod_hooks.prometheus_text`), the one parser
of it in the project.
"""

from __future__ import annotations

import urllib.request
from collections import defaultdict

from pod_hooks.prometheus_text import samples


def fetch_metrics_text(metrics_url: str, timeout_s: float = 5.0) -> str:
    with urllib.request.urlopen(metrics_url, timeout=timeout_s) as response:
        return response.read().decode()


def per_model(metrics_text: str, metric: str) -> dict[str, float]:
    """`metric`'s value per model (summed over versions), e.g. nv_inference_exec_count."""
    values: dict[str, float] = defaultdict(float)
    for name, labels, value in samples(metrics_text):
        if name == metric and "model" in labels:
            values[labels["model"]] += value
    return dict(values)


def scrape_per_model(metrics_url: str, metric: str) -> dict[str, float]:
    return per_model(fetch_metrics_text(metrics_url), metric)
