"""Samples of Prometheus' text exposition format, as Triton's /metrics endpoint serves them.

Standard library only, like the rest of this unit: the drain hook reads Triton's metrics with it
inside the pod, and the tooling (`inference_tools.triton_metrics`) with it on a workstation. Not
the usual client library, because that renames counter samples (`_total`), and Triton's names
are what our rules and alerts use.
"""

from __future__ import annotations

import re
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
