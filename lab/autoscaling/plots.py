"""PNG figures for the capacity simulation and the load step on the cluster (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display here
import matplotlib.pyplot as plt
import numpy as np

from lab.autoscaling.simulator import SimulationResult


def plot_simulation(results: Sequence[SimulationResult], path: Path, title: str) -> Path:
    """One trace, every signal: offered load, pods ready, p95 latency per 10 s (a simulation)."""
    fig, (load, pods, latency) = plt.subplots(
        3, 1, figsize=(9, 8), sharex=True, constrained_layout=True
    )
    colours = ["tab:green", "tab:olive", "tab:purple", "tab:red", "tab:blue"]
    first = results[0]
    load.plot(
        [t for t, *_ in first.timeline], [rate for *_, rate in first.timeline], color="tab:gray"
    )
    load.set_ylabel("requests/s")
    load.set_title("Offered load (simulated arrivals)", fontsize=10, loc="left")
    for result, colour in zip(results, colours, strict=False):
        times = [t for t, *_ in result.timeline]
        pods.step(
            times,
            [ready for _, _, ready, _ in result.timeline],
            where="post",
            color=colour,
            label=result.signal,
        )
        buckets: dict[int, list[float]] = {}
        for done, value in zip(result.completion_times_s, result.latencies_s, strict=True):
            buckets.setdefault(int(done // 10), []).append(value)
        keys = sorted(buckets)
        latency.plot(
            [10 * k + 5 for k in keys],
            [float(np.percentile(buckets[k], 95)) * 1000 for k in keys],
            color=colour,
            label=result.signal,
        )
    latency.axhline(
        first.objective_s * 1000,
        color="black",
        linestyle="--",
        linewidth=1,
        label="latency objective (p95)",
    )
    latency.set_yscale("log")
    latency.set_ylabel("p95 latency, ms")
    latency.set_xlabel("seconds (simulated)")
    latency.set_title("p95 latency of the requests finishing in each 10 s", fontsize=10, loc="left")
    latency.legend(loc="upper right", fontsize=7)
    pods.set_ylabel("pods ready")
    pods.set_title(
        "Ready pods per autoscaler (the oracle, or the HPA algorithm)", fontsize=10, loc="left"
    )
    pods.legend(loc="upper left", fontsize=7)
    fig.suptitle(title, fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@dataclass
class ClusterRow:
    """One 5 s sample of a load step on the cluster (tests/e2e/test_autoscaling.py)."""

    time_s: float
    offered_per_s: float
    served_per_s: float
    p50_s: float | None
    p99_s: float | None
    metrics: dict[str, float | None]
    desired_replicas: int | None
    spec_replicas: int | None
    ready_replicas: int


def plot_cluster_step(
    rows: Sequence[ClusterRow],
    targets: Mapping[str, float],
    marks: Mapping[str, float],
    replica_bounds: tuple[int, int],
    path: Path,
    title: str,
    metrics_path: str = "prometheus-adapter",
) -> Path:
    """A load step through the real controllers, drawn like the loop and the simulation: load,
    latency, each HPA metric against its target (served through `metrics_path`), replicas;
    `marks` are the moments (seconds) the figures are measured between."""
    t = [r.time_s for r in rows]
    fig, (load, latency, metrics, replicas) = plt.subplots(
        4, 1, figsize=(9, 10), sharex=True, constrained_layout=True
    )
    load.plot(t, [r.offered_per_s for r in rows], color="tab:gray", label="offered")
    load.plot(t, [r.served_per_s for r in rows], color="tab:blue", label="served (200 OK)")
    load.set_ylabel("requests/s")
    load.legend(loc="upper right", fontsize=8)
    load.set_title("Load through the Service's ClusterIP (open loop)", fontsize=10, loc="left")

    for field, colour, name in (("p50_s", "tab:green", "p50"), ("p99_s", "tab:red", "p99")):
        values = [getattr(r, field) for r in rows]
        latency.plot(t, [v * 1000 if v is not None else np.nan for v in values], color=colour,
                     label=name)  # fmt: skip
    latency.set_yscale("log")
    latency.set_ylabel("ms")
    latency.legend(loc="upper right", fontsize=8)
    latency.set_title("Latency of the requests answered in each 5 s (from when they were due)",
                      fontsize=10, loc="left")  # fmt: skip

    colours = ["tab:orange", "tab:purple", "tab:cyan"]
    for (name, target), colour in zip(targets.items(), colours, strict=False):
        values = [r.metrics.get(name) for r in rows]
        metrics.plot(t, [v / target if v is not None else np.nan for v in values],
                     color=colour, label=name)  # fmt: skip
    metrics.axhline(1.0, color="black", linestyle="--", linewidth=1, label="target")
    metrics.set_ylabel("current / target")
    metrics.legend(loc="upper right", fontsize=7)
    metrics.set_title(f"The HPA's status.currentMetrics (via {metrics_path}), per pod",
                      fontsize=10, loc="left")  # fmt: skip

    replicas.step(t, [r.desired_replicas or 0 for r in rows], where="post", color="tab:green",
                  linewidth=2, label="HPA desired")  # fmt: skip
    replicas.step(t, [r.spec_replicas or 0 for r in rows], where="post", color="tab:olive",
                  linestyle="--", label="Deployment spec.replicas")  # fmt: skip
    replicas.step(t, [r.ready_replicas for r in rows], where="post", color="tab:blue",
                  label="ready")  # fmt: skip
    low, high = replica_bounds
    replicas.axhline(low, color="0.5", linewidth=0.8)
    replicas.axhline(high, color="0.5", linewidth=0.8)
    replicas.set_ylim(0, high + 1)
    replicas.set_ylabel("replicas")
    replicas.set_xlabel("seconds")
    replicas.legend(loc="upper right", fontsize=8)
    replicas.set_title("Replicas (kube-controller-manager's HPA and Deployment controllers)",
                       fontsize=10, loc="left")  # fmt: skip

    axes = (load, latency, metrics, replicas)
    for name, at in marks.items():
        for ax in axes:
            ax.axvline(at, color="0.6", linestyle=":", linewidth=1)
        replicas.annotate(name, xy=(at, 0.0), xycoords=("data", "axes fraction"),
                          xytext=(3, 4), textcoords="offset points", fontsize=7, color="0.35",
                          rotation=90)  # fmt: skip
    fig.suptitle(title, fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
