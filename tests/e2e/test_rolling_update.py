"""A rolling update of the cpu overlay under load through the Service's ClusterIP (kube-proxy):
8 closed-loop clients, a pod-template annotation changed. With the shipped preStop drain no
request fails; the same rollout with the preStop removed (the control) shows what it saves."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from kubecluster.kubeapi import KubeApi

from python_backend.contract import ENSEMBLE, TEXT
from tests.e2e.conftest import NAMESPACE, Kubectl, apply_release

pytestmark = pytest.mark.e2e

CLIENTS = 8
WARM_UP_SECONDS = 3.0
ROLLOUT_TIMEOUT = "420s"
BODY = json.dumps(
    {"inputs": [{"name": TEXT, "shape": [1, 1], "datatype": "BYTES", "data": ["a rolling update"]}]}
).encode()


@dataclass
class Load:
    """Closed-loop clients, each request on a new connection, so that kube-proxy chooses an
    endpoint per request, as it does for every new connection in a cluster."""

    address: str
    stop: threading.Event = field(default_factory=threading.Event)
    outcomes: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self) -> None:
        while not self.stop.is_set():
            connection = http.client.HTTPConnection(self.address, 8000, timeout=30)
            try:
                connection.request("POST", f"/v2/models/{ENSEMBLE}/infer", body=BODY)
                response = connection.getresponse()
                text = response.read()
                outcome = (
                    "ok" if response.status == 200 else f"HTTP {response.status}: {text[:90]!r}"
                )
            except OSError as error:
                outcome = f"{type(error).__name__}: {error}"[:120]
            finally:
                connection.close()
            with self.lock:
                self.outcomes[outcome] += 1

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(CLIENTS)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    @property
    def failed(self) -> int:
        return sum(n for outcome, n in self.outcomes.items() if outcome != "ok")


def rollout(kubectl: Kubectl, api: KubeApi, label: str) -> tuple[Load, float]:
    kubectl.run("rollout", "status", "deployment/triton", f"--namespace={NAMESPACE}",
                f"--timeout={ROLLOUT_TIMEOUT}")  # fmt: skip
    service = api.get(f"/api/v1/namespaces/{NAMESPACE}/services/triton")
    with Load(service["spec"]["clusterIP"]) as load:
        time.sleep(WARM_UP_SECONDS)
        started = time.monotonic()
        patch = {"spec": {"template": {"metadata": {"annotations": {"e2e/rollout": label}}}}}
        kubectl.run("patch", "deployment/triton", f"--namespace={NAMESPACE}", "--type=strategic",
                    "-p", json.dumps(patch))  # fmt: skip
        kubectl.run("rollout", "status", "deployment/triton", f"--namespace={NAMESPACE}",
                    f"--timeout={ROLLOUT_TIMEOUT}")  # fmt: skip
        # rollout status returns once the new pods are available; the old one may still drain.
        while len(api.get(f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]) > 1:
            time.sleep(0.5)
        seconds = time.monotonic() - started
        time.sleep(WARM_UP_SECONDS)
    return load, seconds


def report(name: str, load: Load, seconds: float) -> None:
    total = sum(load.outcomes.values())
    failures = {k: v for k, v in load.outcomes.items() if k != "ok"}
    print(
        f"\n{name}: rollout {seconds:.0f} s, {total} requests from {CLIENTS} clients through "
        f"the ClusterIP, {load.failed} failed {failures}"
    )


def test_rolling_update_under_load_loses_nothing_with_the_prestop_drain(
    kubectl: Kubectl, api: KubeApi, cpu_release: None
) -> None:
    load, seconds = rollout(kubectl, api, f"with-prestop-{time.time():.0f}")
    report("rolling update, shipped preStop drain", load, seconds)
    assert load.outcomes["ok"] > 0
    assert load.failed == 0


def test_rolling_update_without_prestop_is_the_control(
    kubectl: Kubectl, api: KubeApi, cpu_release: None
) -> None:
    remove = [{"op": "remove", "path": "/spec/template/spec/containers/0/lifecycle"}]
    kubectl.run("patch", "deployment/triton", f"--namespace={NAMESPACE}", "--type=json",
                "-p", json.dumps(remove))  # fmt: skip
    try:
        load, seconds = rollout(kubectl, api, f"without-prestop-{time.time():.0f}")
    finally:
        # The overlay as users apply it again, preStop included.
        apply_release(kubectl, "cpu")
    report("rolling update, preStop removed (control)", load, seconds)
    verdict = "the drain saved requests" if load.failed else "inconclusive: nothing failed"
    print(f"control verdict: {verdict}")
    assert load.outcomes["ok"] > 0
