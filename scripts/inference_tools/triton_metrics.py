"""Reading Triton's Prometheus metrics endpoint: per-model counters and gauges.

A small parser of the text exposition format, because the usual client library renames
counter samples (`_total`), and Triton's names are what our rules and alerts use.
"""

from __future__ import annotations

import re
import urllib.request
from collections import defaultdict
from collections.abc import Iterator

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')


def samples(metrics_text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """(name, labels, value) for every sample line of a /metrics page."""
    for line in metrics_text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = {m["key"]: m["value"] for m in _LABEL.finditer(match["labels"] or "")}
        yield match["name"], labels, float(match["value"])


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
