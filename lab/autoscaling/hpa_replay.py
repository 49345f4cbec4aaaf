"""Replaying what a real HPA controller saw through the model, sync by sync.

A recording (written by the end-to-end scenario `tests/e2e/test_hpa_model.py` on `make cluster`)
holds, for every sync of kube-controller-manager's HPA controller: when it asked the metrics API
(the adapter's own request log), the scale target's replica count and the pods as they stood
just before, the per-pod values the metrics API answered with at that instant (Prometheus asked
for that moment), and what the controller then wrote to the HPA's status. `replay` feeds the
same inputs, at the same times, to `lab.autoscaling.hpa.HorizontalPodAutoscaler` and puts its
decision beside the controller's.

Each sync gets the controller's replica count, not the model's (the pods and values that
followed came from the controller's decisions); the model keeps its own recommendations and
scale events, so a wrong decision shows in the windows and rate limits of the syncs after it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference_tools.autoscaling.hpa_spec import HPASpec

from lab.autoscaling.hpa import Decision, HorizontalPodAutoscaler, Observation, Pod

PENDING = "Pending"
# Pods the controller leaves out of every calculation.
FINISHED_PHASES = frozenset({"Failed", "Succeeded"})


@dataclass(frozen=True)
class RecordedPod:
    name: str
    phase: str
    ready: bool
    terminating: bool

    def as_model_pod(self) -> Pod:
        return Pod(self.name, ready=self.ready, pending=self.phase == PENDING)


@dataclass(frozen=True)
class RecordedSync:
    """One sync of the real controller: its inputs and what it decided."""

    at_s: float
    replicas: int
    pods: tuple[RecordedPod, ...]
    # Per metric name: per-pod values, or None where the metrics API answered with an error.
    values: Mapping[str, Mapping[str, float] | None]
    desired_replicas: int
    # status.currentMetrics, per metric name: the average the controller computed (None when
    # it could not compute one).
    current_averages: Mapping[str, float | None]
    conditions: Mapping[str, str]

    def model_pods(self) -> list[Pod]:
        # Terminating and finished pods are ignored by the controller (its `ignoredPods`).
        return [
            p.as_model_pod()
            for p in self.pods
            if not p.terminating and p.phase not in FINISHED_PHASES
        ]


@dataclass(frozen=True)
class Recording:
    hpa: Mapping[str, Any]
    syncs: tuple[RecordedSync, ...]
    source: str

    @property
    def spec(self) -> HPASpec:
        return HPASpec.from_manifest(self.hpa)


def load(path: Path) -> Recording:
    data = json.loads(path.read_text())
    syncs = tuple(
        RecordedSync(
            at_s=float(s["at_s"]),
            replicas=int(s["replicas"]),
            pods=tuple(RecordedPod(**p) for p in s["pods"]),
            values=s["values"],
            desired_replicas=int(s["desired_replicas"]),
            current_averages=s["current_averages"],
            conditions=s["conditions"],
        )
        for s in data["syncs"]
    )
    return Recording(hpa=data["hpa"], syncs=syncs, source=data["source"])


def dump(recording: Recording, path: Path) -> None:
    syncs = [
        {
            "at_s": round(s.at_s, 3),
            "replicas": s.replicas,
            "pods": [
                {"name": p.name, "phase": p.phase, "ready": p.ready, "terminating": p.terminating}
                for p in s.pods
            ],
            "values": s.values,
            "desired_replicas": s.desired_replicas,
            "current_averages": s.current_averages,
            "conditions": dict(s.conditions),
        }
        for s in recording.syncs
    ]
    # One sync a line: a recording reads (and diffs) sync by sync.
    head = json.dumps({"source": recording.source, "hpa": recording.hpa}, indent=1)[:-2]
    lines = ",\n".join("  " + json.dumps(sync) for sync in syncs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{head},\n "syncs": [\n{lines}\n ]\n}}\n')


@dataclass(frozen=True)
class Comparison:
    sync: RecordedSync
    model: Decision

    @property
    def agrees(self) -> bool:
        return self.model.desired_replicas == self.sync.desired_replicas

    def average_mismatches(self) -> dict[str, tuple[float | None, float | None]]:
        """Per metric, (controller, model) where the average the controller wrote to
        `status.currentMetrics` is not the one the model computed from the recorded values:
        evidence that the recording holds other values than the controller saw."""
        model = {p.metric.name: p.current_value for p in self.model.proposals}
        return {
            name: (average, model.get(name))
            for name, average in self.sync.current_averages.items()
            if model.get(name) is None or abs(model[name] - average) > 5e-4
        }

    def describe(self) -> str:
        pods = ", ".join(
            f"{p.name[-5:]}:{p.phase[0]}{'r' if p.ready else '-'}{'T' if p.terminating else ''}"
            for p in self.sync.pods
        )
        return (
            f"t={self.sync.at_s:7.1f} s replicas {self.sync.replicas} -> controller "
            f"{self.sync.desired_replicas}, model {self.model.desired_replicas} "
            f"({self.model.reason}); values {dict(self.sync.values)}; pods [{pods}]"
        )


def observations(sync: RecordedSync) -> dict[str, Observation]:
    return {name: None if v is None else dict(v) for name, v in sync.values.items()}


def replay(recording: Recording) -> list[Comparison]:
    """The model's decision at every recorded sync, beside the controller's."""
    model = HorizontalPodAutoscaler(recording.spec)
    return [
        Comparison(
            sync,
            model.reconcile(sync.at_s, sync.replicas, sync.model_pods(), observations(sync)),
        )
        for sync in recording.syncs
    ]


def disagreements(
    comparisons: Sequence[Comparison], timing_tolerance_syncs: int = 0
) -> list[Comparison]:
    """The syncs where the model's replica count is not the controller's. With a timing
    tolerance of n syncs, a model decision that equals the controller's within n syncs before or
    after passes: the same decisions, at most n sync periods apart."""
    found = []
    for index, comparison in enumerate(comparisons):
        if comparison.agrees:
            continue
        nearby = comparisons[
            max(0, index - timing_tolerance_syncs) : index + timing_tolerance_syncs + 1
        ]
        if any(c.sync.desired_replicas == comparison.model.desired_replicas for c in nearby):
            continue
        found.append(comparison)
    return found
