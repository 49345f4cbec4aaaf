"""A Prometheus scrape job that gives local targets the labels a ServiceMonitor gives pods.

The Prometheus Operator turns a ServiceMonitor endpoint into a `kubernetes_sd_configs` job
whose relabelling derives `namespace`, `service`, `pod`, `container`, `job` and `endpoint` from
the `__meta_kubernetes_*` labels of each endpoint (see its generated configurations). Here the
same relabelling runs on a static target that carries those meta labels, taken from the rendered
ServiceMonitor, Service and Deployment, so the local series look like the cluster's.
tests/e2e/test_monitoring.py holds its labels equal to those the real operator's job gives a real
pod, scraped by a real Prometheus.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from inference_tools.manifests.render import Render


@dataclass(frozen=True)
class LocalTarget:
    address: str  # host:port of the metrics endpoint
    pod: str  # the pod name the target stands for


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _relabel_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A ServiceMonitor RelabelConfig (camelCase) as Prometheus configuration (snake_case)."""
    return {_snake(key): value for key, value in raw.items()}


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _sanitized(label: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


def _operator_relabelings(
    endpoint_port: str, job_label: str | None, target_labels: Sequence[str] = ()
) -> list[dict[str, Any]]:
    job_source = (
        f"__meta_kubernetes_service_label_{_sanitized(job_label)}"
        if job_label
        else "__meta_kubernetes_service_name"
    )
    # spec.targetLabels: the Service's labels copied onto every series, under sanitized names.
    copied = [
        {
            "source_labels": [f"__meta_kubernetes_service_label_{_sanitized(label)}"],
            "target_label": _sanitized(label),
            "regex": "(.+)",
            "replacement": "${1}",
        }
        for label in target_labels
    ]
    return [
        {
            "action": "keep",
            "source_labels": ["__meta_kubernetes_endpoint_port_name"],
            "regex": endpoint_port,
        },
        {
            "source_labels": [
                "__meta_kubernetes_endpoint_address_target_kind",
                "__meta_kubernetes_endpoint_address_target_name",
            ],
            "separator": ";",
            "regex": "Pod;(.*)",
            "replacement": "${1}",
            "target_label": "pod",
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {
            "action": "drop",
            "source_labels": ["__meta_kubernetes_pod_phase"],
            "regex": "(Failed|Succeeded)",
        },
        *copied,
        {"source_labels": [job_source], "target_label": "job", "replacement": "${1}"},
        {"target_label": "endpoint", "replacement": endpoint_port},
    ]


def scrape_configs(
    rendered: Render,
    targets: list[LocalTarget],
    scrape_interval: str | None = None,
) -> list[dict[str, Any]]:
    """One scrape job per endpoint of the rendered ServiceMonitor, aimed at `targets`.

    `scrape_interval` overrides the endpoint's interval (a test may run faster than a
    cluster); the relabelling is the ServiceMonitor's.
    """
    monitor = rendered.one("ServiceMonitor")
    namespace = monitor["metadata"].get("namespace", "default")
    selector = monitor["spec"]["selector"].get("matchLabels", {})
    service = next(
        s
        for s in rendered.of_kind("Service")
        if _matches(selector, s["metadata"].get("labels", {}))
        and s["metadata"].get("namespace", "default") == namespace
    )
    deployment = next(
        d
        for d in rendered.of_kind("Deployment")
        if _matches(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
    )
    jobs = []
    for index, endpoint in enumerate(monitor["spec"]["endpoints"]):
        port_name = endpoint["port"]
        service_port = next(p for p in service["spec"]["ports"] if p.get("name") == port_name)
        container = next(
            c["name"]
            for c in deployment["spec"]["template"]["spec"]["containers"]
            if any(p.get("name") == service_port.get("targetPort") for p in c.get("ports", []))
        )
        interval = scrape_interval or endpoint.get("interval", "30s")
        meta = {
            "__meta_kubernetes_namespace": namespace,
            "__meta_kubernetes_service_name": service["metadata"]["name"],
            "__meta_kubernetes_endpoint_port_name": port_name,
            "__meta_kubernetes_endpoint_address_target_kind": "Pod",
            "__meta_kubernetes_pod_container_name": container,
            "__meta_kubernetes_pod_phase": "Running",
        }
        for key, value in service["metadata"].get("labels", {}).items():
            meta[f"__meta_kubernetes_service_label_{_sanitized(key)}"] = value
        jobs.append(
            {
                "job_name": f"serviceMonitor/{namespace}/{monitor['metadata']['name']}/{index}",
                "honor_labels": bool(endpoint.get("honorLabels", False)),
                "scrape_interval": interval,
                "scrape_timeout": interval if scrape_interval else endpoint.get("scrapeTimeout"),
                "metrics_path": endpoint.get("path", "/metrics"),
                "scheme": endpoint.get("scheme", "http"),
                "static_configs": [
                    {
                        "targets": [target.address],
                        "labels": {
                            **meta,
                            "__meta_kubernetes_pod_name": target.pod,
                            "__meta_kubernetes_endpoint_address_target_name": target.pod,
                        },
                    }
                    for target in targets
                ],
                "relabel_configs": _operator_relabelings(
                    port_name,
                    monitor["spec"].get("jobLabel"),
                    monitor["spec"].get("targetLabels", []),
                )
                + [_relabel_config(r) for r in endpoint.get("relabelings", [])],
                "metric_relabel_configs": [
                    _relabel_config(r) for r in endpoint.get("metricRelabelings", [])
                ],
            }
        )
    for job in jobs:
        if job["scrape_timeout"] is None:
            del job["scrape_timeout"]
    return jobs
