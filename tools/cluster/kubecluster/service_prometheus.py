"""A host Prometheus for the autoscaling scenarios: it scrapes the pods behind a Service with the
relabelling the Prometheus Operator generates for the overlay's ServiceMonitor, and evaluates
the overlay's PrometheusRule, so the recorded series prometheus-adapter serves carry the
`namespace`, `service` and `pod` labels a cluster's would.

Debian's Prometheus (2.42) has no Kubernetes service discovery, so the targets come from a file
(`file_sd_configs`) that `EndpointTargets` keeps in step with the Service's EndpointSlices,
every endpoint that is not terminating (ready or not), as the operator's Endpoints discovery
lists them. Everything else (scrape and rule intervals, the relabelling, the rules) is the
rendered overlay's, unchanged. monitoring.py runs the operator's own configuration instead,
where a Prometheus with Kubernetes discovery is at hand.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from pathlib import Path
from typing import Any

import yaml
from inference_tools.autoscaling.rendered_settings import prometheus_rule_file
from inference_tools.autoscaling.servicemonitor import LocalTarget, scrape_configs
from inference_tools.manifests.render import Render
from inference_tools.prometheus_runner import find_prometheus

from kubecluster import processes
from kubecluster.kubeapi import KubeApi
from kubecluster.layout import ClusterLayout

COMPONENT = "prometheus-autoscaling"
LOOPBACK = "127.0.0.1"
START_TIMEOUT_SECONDS = 60.0
SYNC_SECONDS = 1.0


def _folder(layout: ClusterLayout) -> Path:
    return layout.root / COMPONENT


def target_files(folder: Path, jobs: int) -> list[Path]:
    return [folder / f"targets-{index}.json" for index in range(jobs)]


def configuration(rendered: Render, folder: Path) -> dict[str, Any]:
    """The ServiceMonitor's scrape jobs, their targets read from files."""
    jobs = scrape_configs(rendered, [])
    for job, targets in zip(jobs, target_files(folder, len(jobs)), strict=True):
        del job["static_configs"]
        # A changed file is read at once (inotify); the interval is the fallback.
        job["file_sd_configs"] = [{"files": [str(targets)], "refresh_interval": "5s"}]
    return {"scrape_configs": jobs, "rule_files": ["rules.yaml"]}


def endpoint_targets(slices: list[dict[str, Any]], port_name: str) -> list[LocalTarget]:
    """The pods behind a Service's EndpointSlices, at the named port, terminating ones left
    out (the Endpoints discovery the operator configures lists ready and not-ready ones)."""
    found = []
    for endpoint_slice in slices:
        port = next((p["port"] for p in endpoint_slice.get("ports") or []
                     if p.get("name") == port_name), None)  # fmt: skip
        if port is None:
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            reference = endpoint.get("targetRef") or {}
            if reference.get("kind") != "Pod":
                continue
            if (endpoint.get("conditions") or {}).get("terminating"):
                continue
            found += [LocalTarget(f"{address}:{port}", reference["name"])
                      for address in endpoint["addresses"]]  # fmt: skip
    return sorted(found, key=lambda t: t.pod)


def write_targets(rendered: Render, folder: Path, targets: list[LocalTarget]) -> None:
    jobs = scrape_configs(rendered, targets)
    for job, path in zip(jobs, target_files(folder, len(jobs)), strict=True):
        text = json.dumps(job["static_configs"], indent=1, sort_keys=True)
        if path.is_file() and path.read_text() == text:
            continue
        partial = path.with_suffix(".partial")
        partial.write_text(text)
        # Atomic: Prometheus never reads half a file.
        os.replace(partial, path)


class EndpointTargets:
    """Keeps the target files in step with the Service's EndpointSlices, once a second."""

    def __init__(self, api: KubeApi, rendered: Render, folder: Path) -> None:
        monitor = rendered.one("ServiceMonitor")
        self.namespace = monitor["metadata"]["namespace"]
        self.port_name = monitor["spec"]["endpoints"][0]["port"]
        selector = monitor["spec"]["selector"]["matchLabels"]
        self.service = next(
            s["metadata"]["name"] for s in rendered.of_kind("Service")
            if all(s["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())
        )  # fmt: skip
        self.api, self.rendered, self.folder = api, rendered, folder
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="endpoint-targets", daemon=True)

    def sync(self) -> list[LocalTarget]:
        slices = self.api.get(
            f"/apis/discovery.k8s.io/v1/namespaces/{self.namespace}/endpointslices"
            f"?labelSelector=kubernetes.io%2Fservice-name%3D{self.service}"
        )["items"]
        targets = endpoint_targets(slices, self.port_name)
        write_targets(self.rendered, self.folder, targets)
        return targets

    def _loop(self) -> None:
        while not self.stopping.wait(SYNC_SECONDS):
            try:
                self.sync()
            except (OSError, RuntimeError):
                # The API answers again at the next tick; the last targets stay meanwhile.
                continue

    def start(self) -> EndpointTargets:
        self.sync()
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)


def _free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def start(
    layout: ClusterLayout, api: KubeApi, rendered: Render, address: str = LOOPBACK
) -> tuple[str, EndpointTargets]:
    """Prometheus on `address` (loopback unless a Service must route to it) with the overlay's
    scrape jobs and rules; returns its URL and the running target sync (stop it before
    `stop`)."""
    folder = _folder(layout)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "rules.yaml").write_text(yaml.safe_dump(prometheus_rule_file(rendered)))
    (folder / "prometheus.yaml").write_text(yaml.safe_dump(configuration(rendered, folder)))
    targets = EndpointTargets(api, rendered, folder).start()
    port = _free_port(address)
    # Static targets only: the machine's Prometheus (Debian's) runs them, as `promtool` from the
    # same package checks them in make test.
    command = [find_prometheus(), f"--config.file={folder / 'prometheus.yaml'}",
               f"--web.listen-address={address}:{port}",
               f"--storage.tsdb.path={folder / 'data'}", "--log.level=warn"]  # fmt: skip
    (folder / "command.json").write_text(json.dumps(command))
    url = f"http://{address}:{port}"
    _launch(layout, command, url)
    return url, targets


def _launch(layout: ClusterLayout, command: list[str], url: str) -> None:
    processes.start_detached(command, layout.pid_file(COMPONENT), layout.log_file(COMPONENT))
    processes.wait_until(
        lambda: processes.answers(f"{url}/-/ready"),
        {layout.pid_file(COMPONENT): layout.log_file(COMPONENT)},
        "Prometheus",
        layout.log_file(COMPONENT),
        START_TIMEOUT_SECONDS,
        interval_seconds=0.2,
    )


def pause(layout: ClusterLayout) -> None:
    """Stop the Prometheus process and keep its data, configuration and targets (an outage that
    its clients see as a refused connection)."""
    processes.stop(layout.pid_file(COMPONENT), 10.0)


def resume(layout: ClusterLayout, url: str) -> None:
    """Start the paused Prometheus again, on the same address, data and configuration."""
    if processes.running_pid(layout.pid_file(COMPONENT)) is not None:
        return
    command = json.loads((_folder(layout) / "command.json").read_text())
    _launch(layout, command, url)


def stop(layout: ClusterLayout) -> None:
    processes.stop(layout.pid_file(COMPONENT), 10.0)
    shutil.rmtree(_folder(layout), ignore_errors=True)
