"""Where a request's time goes during a load step on the cluster: waiting on the client for a
free worker, on the HTTP path (connection, kube-proxy, the HTTP guard, JSON), queued in each
Triton model's scheduler, or executing. The client's share comes from the load record, Triton's
from its own counters in the host Prometheus (increase over the window, summed over the pods);
Little's law turns each mean time into the requests held there on average."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from kubecluster.monitoring import query
from lab.reliability.load import LoadRecord

# Per model: nv_inference_<counter> summed over the Service's pods.
COUNTERS = {
    "requests": "request_success",
    "executions": "exec_count",
    "request_us": "request_duration_us",
    "queue_us": "queue_duration_us",
    "compute_input_us": "compute_input_duration_us",
    "compute_infer_us": "compute_infer_duration_us",
    "compute_output_us": "compute_output_duration_us",
}


@dataclass(frozen=True)
class ModelShare:
    model: str
    requests_per_s: float
    mean_batch: float
    request_ms: float  # Triton's whole time per request in this model (queue + compute + more)
    queue_ms: float
    compute_ms: float  # input + infer + output, per request
    pending_per_pod: float  # nv_inference_pending_request_count, time-averaged


@dataclass(frozen=True)
class Breakdown:
    window_s: float
    answered: int
    client_latency_ms: float  # mean, from when each request was due
    client_p99_ms: float
    client_wait_ms: float  # due -> a worker sent it (the generator's own queue)
    on_the_wire_ms: float  # sent -> answered
    in_flight_from_client: float  # requests sent and not yet answered, mean (Little)
    models: list[ModelShare]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        parts = [
            f"over {self.window_s:.0f} s, {self.answered} answered: client latency "
            f"{self.client_latency_ms:.0f} ms mean (p99 {self.client_p99_ms:.0f}) = waiting for "
            f"a worker {self.client_wait_ms:.0f} + sent to answered {self.on_the_wire_ms:.0f} "
            f"({self.in_flight_from_client:.1f} in flight)"
        ]
        parts += [
            f"{m.model}: {m.requests_per_s:.1f}/s, batch {m.mean_batch:.1f}, in Triton "
            f"{m.request_ms:.1f} ms = queue {m.queue_ms:.1f} + compute {m.compute_ms:.1f}; "
            f"pending {m.pending_per_pod:.1f} per pod"
            for m in self.models
        ]
        return "; ".join(parts)


def client_side(record: LoadRecord, start_s: float, end_s: float) -> dict[str, float]:
    """The answered requests due in [start_s, end_s) (seconds since the load started); the
    requests in flight are those sent in it."""
    answered = [o for o in record.snapshot() if o.ok and start_s <= o.sent_at_s < end_s]
    if not answered:
        return {}
    latency = np.array([o.latency_s for o in answered])
    waited = np.array([o.waited_s for o in answered])
    wire = latency - waited
    # Requests in flight (Little's law): wire time of those sent within the window.
    sent = np.array([o.sent_at_s + o.waited_s for o in answered])
    inside = (sent >= start_s) & (sent < end_s)
    return {
        "answered": len(answered),
        "latency_ms": float(latency.mean() * 1000),
        "p99_ms": float(np.percentile(latency, 99) * 1000),
        "wait_ms": float(waited.mean() * 1000),
        "wire_ms": float(wire.mean() * 1000),
        "in_flight": float(wire[inside].sum() / (end_s - start_s)),
    }


def triton_side(url: str, namespace: str, end_wall: float, window_s: float) -> list[ModelShare]:
    window = f"{max(30, round(window_s))}s"
    selector = f'namespace="{namespace}"'
    totals: dict[str, dict[str, float]] = {}
    for key, counter in COUNTERS.items():
        promql = f"sum by (model) (increase(nv_inference_{counter}{{{selector}}}[{window}]))"
        for series in query(url, promql, end_wall):
            totals.setdefault(series["metric"]["model"], {})[key] = float(series["value"][1])
    pending_query = (
        f"avg by (model) (avg_over_time(nv_inference_pending_request_count{{{selector}}}"
        f"[{window}]))"
    )
    pending = {s["metric"]["model"]: float(s["value"][1])
               for s in query(url, pending_query, end_wall)}  # fmt: skip
    shares = []
    for model, total in sorted(totals.items()):
        requests = total.get("requests", 0.0)
        if requests <= 0:
            continue
        compute = sum(total.get(k, 0.0) for k in
                      ("compute_input_us", "compute_infer_us", "compute_output_us"))  # fmt: skip
        shares.append(ModelShare(
            model=model,
            requests_per_s=round(requests / float(window[:-1]), 1),
            mean_batch=round(requests / max(total.get("executions", 0.0), 1.0), 2),
            request_ms=round(total.get("request_us", 0.0) / requests / 1000, 2),
            queue_ms=round(total.get("queue_us", 0.0) / requests / 1000, 2),
            compute_ms=round(compute / requests / 1000, 2),
            pending_per_pod=round(pending.get(model, 0.0), 2),
        ))  # fmt: skip
    return shares


def breakdown(record: LoadRecord, start_s: float, end_s: float, url: str, namespace: str,
              end_wall: float) -> Breakdown | None:  # fmt: skip
    """Where the time went for the requests due between `start_s` and `end_s` (seconds since
    the load started), which ended at `end_wall` (time.time())."""
    client = client_side(record, start_s, end_s)
    if not client:
        return None
    return Breakdown(
        window_s=round(end_s - start_s, 1),
        answered=int(client["answered"]),
        client_latency_ms=round(client["latency_ms"], 1),
        client_p99_ms=round(client["p99_ms"], 1),
        client_wait_ms=round(client["wait_ms"], 1),
        on_the_wire_ms=round(client["wire_ms"], 1),
        in_flight_from_client=round(client["in_flight"], 1),
        models=triton_side(url, namespace, end_wall, end_s - start_s),
    )
