"""The HPA model held to the real controller's decisions, without a cluster.

The fixture is a recording of kube-controller-manager v1.34.4's HPA controller on `make cluster`,
written by the end-to-end scenario tests/e2e/test_hpa_model.py (copy its
.work/e2e/hpa-model/recorded.json here to refresh it): every sync with the pods, the replica
count and the per-pod values the controller saw, and the replica count it then set. The model
replays the same inputs at the same moments and must set the same counts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lab.autoscaling.hpa_replay import RecordedSync, Recording, load, replay

from tests.checkout import KUSTOMIZE_DIR

FIXTURE = Path(__file__).parent / "fixtures" / "hpa-controller-v1.34.4.json"
SHIPPED_HPA = (
    KUSTOMIZE_DIR / "components" / "autoscaling-hpa" / "triton-horizontalpodautoscaler.yaml"
)


@pytest.fixture(scope="module")
def recording() -> Recording:
    return load(FIXTURE)


def test_the_recording_ran_the_shipped_behavior(recording: Recording) -> None:
    shipped = yaml.safe_load(SHIPPED_HPA.read_text())["spec"]
    recorded = recording.hpa["spec"]
    assert recorded["behavior"] == shipped["behavior"], "shipped behavior changed: re-record"
    assert (recorded["minReplicas"], recorded["maxReplicas"]) == (
        shipped["minReplicas"],
        shipped["maxReplicas"],
    )


def test_the_recording_covers_what_the_model_must_get_right(recording: Recording) -> None:
    syncs = recording.syncs
    counts = [s.replicas for s in syncs]
    minimum = recording.spec.min_replicas
    rises = sum(1 for s in syncs if s.desired_replicas > s.replicas)
    falls = sum(1 for s in syncs if s.desired_replicas < s.replicas)
    # A rise limited by the policies, the stabilization window holding a fall, back down.
    assert rises >= 2 and falls >= 2 and max(counts) > minimum + 2, counts

    def listed_without_value(sync: RecordedSync) -> bool:
        values = next(iter(sync.values.values()))
        return values is not None and any(
            p.phase == "Running" and not p.terminating and p.name not in values for p in sync.pods
        )

    def running_not_ready_with_value(sync: RecordedSync) -> bool:
        values = next(iter(sync.values.values())) or {}
        return any(p.phase == "Running" and not p.ready and p.name in values for p in sync.pods)

    assert any(listed_without_value(s) for s in syncs), "no sync with a missing pod"
    assert any(running_not_ready_with_value(s) for s in syncs), "no sync with a starting pod"
    assert any(v is None for s in syncs for v in s.values.values()), "no sync without metrics"


def test_the_model_sets_the_controllers_replica_count_at_every_recorded_sync(
    recording: Recording,
) -> None:
    comparisons = replay(recording)
    assert [c.describe() for c in comparisons if not c.agrees] == []


def test_the_recorded_values_are_those_the_controller_averaged(recording: Recording) -> None:
    comparisons = replay(recording)
    averaged = [c for c in comparisons if c.sync.current_averages]
    assert len(averaged) >= len(comparisons) - 3
    assert {c.sync.at_s: c.average_mismatches() for c in averaged if c.average_mismatches()} == {}
