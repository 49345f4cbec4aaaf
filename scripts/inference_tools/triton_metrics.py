"""Reading Triton's Prometheus metrics endpoint: per-model counters and gauges."""

from __future__ import annotations

import urllib.request
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families


def fetch_metrics_text(metrics_url: str, timeout_s: float = 5.0) -> str:
    with urllib.request.urlopen(metrics_url, timeout=timeout_s) as response:
        return response.read().decode()


def per_model(metrics_text: str, metric: str) -> dict[str, float]:
    """`metric`'s value per model (summed over versions), e.g. nv_inference_exec_count."""
    values: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == metric and "model" in sample.labels:
                values[sample.labels["model"]] += sample.value
    return dict(values)


def scrape_per_model(metrics_url: str, metric: str) -> dict[str, float]:
    return per_model(fetch_metrics_text(metrics_url), metric)
