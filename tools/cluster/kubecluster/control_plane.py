"""`make cluster` / `make cluster-down`: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and the pod runner as host processes on loopback, with `.work/cluster/kubeconfig`.

A second `up` while the cluster answers reuses it; `down` stops every process it started (pods
first, so their network namespaces go too) and sweeps whatever of ours is left on the host.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from kubecluster import kubeapi, metrics_adapter, monitoring, network, processes, service_prometheus
from kubecluster.build import ensure_binaries
from kubecluster.layout import (
    BRIDGE_ADDRESS,
    CHECKOUT,
    NODE_NAME,
    POD_CIDR,
    SERVICE_CIDR,
    ClusterLayout,
)
from kubecluster.pki import (
    ADMIN,
    CONTROLLER_MANAGER,
    FRONT_PROXY_CLIENT,
    KUBE_PROXY,
    POD_RUNNER,
    SCHEDULER,
    ClientIdentity,
    Pki,
    ensure_pki,
)
from kubecluster.pod_python import ensure_pod_python

LOOPBACK = "127.0.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Stopped in this order: the runner first, so pods get their teardown while the API answers.
COMPONENTS = (
    "kube-proxy",
    "pod-runner",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
)
START_TIMEOUT_SECONDS = 120.0
# The pod runner kills what is left of its pods at once on SIGTERM; this leaves it time to do so.
STOP_GRACE_SECONDS = {"pod-runner": 30.0}


class ClusterStartError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def write_kubeconfig(path: Path, server: str, pki: Pki, identity: ClientIdentity) -> None:
    credentials = {
        "client-certificate": str(pki.client_cert(identity)),
        "client-key": str(pki.client_key(identity)),
    }
    kubeapi.write_kubeconfig(path, server, pki.ca_cert, identity.user, credentials)


def _get(url: str, context: ssl.SSLContext | None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except OSError as error:
        return 0, str(error)


def admin_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.client_cert(ADMIN)), str(pki.client_key(ADMIN)))
    return context


def _unverified() -> ssl.SSLContext:
    # The controller manager and scheduler serve /healthz with self-signed certificates of their
    # own making; only "is it up" is asked of them.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _wait_healthy(
    layout: ClusterLayout, component: str, url: str, context: ssl.SSLContext | None
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    status, body = 0, ""
    while time.monotonic() < deadline:
        if processes.running_pid(layout.pid_file(component)) is None:
            raise ClusterStartError(
                f"{component} exited during start-up; last lines of {layout.log_file(component)}:\n"
                + _tail(layout.log_file(component))
            )
        status, body = _get(url, context)
        if status == 200:
            return
        time.sleep(0.25)
    raise ClusterStartError(
        f"{component} not healthy at {url} after {START_TIMEOUT_SECONDS:.0f} s "
        f"(last answer {status}: {body[:300]}); see {layout.log_file(component)}"
    )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def read_state(layout: ClusterLayout) -> dict[str, int] | None:
    try:
        return dict(json.loads(layout.state_file.read_text()))
    except (OSError, ValueError):
        return None


def is_running(layout: ClusterLayout) -> bool:
    """Every process alive and the API server ready."""
    state = read_state(layout)
    if state is None or not layout.kubeconfig.is_file():
        return False
    if any(processes.running_pid(layout.pid_file(c)) is None for c in COMPONENTS):
        return False
    pki = Pki(layout.pki)
    status, _ = _get(f"https://{LOOPBACK}:{state['apiserver']}/readyz", admin_context(pki))
    return status == 200


def other_clusters(layout: ClusterLayout) -> list[str]:
    """The folders of clusters this tooling started from other checkouts on this machine: the
    pod bridge, the pod subnet and kube-proxy's nft tables exist once per machine."""
    found = set()
    for cmdline in processes.command_lines():
        executable = Path(cmdline[0]) if cmdline else Path()
        if executable.name == "kube-apiserver" and executable.parent.parent.name == "bin":
            cluster_root = executable.parent.parent.parent
            if cluster_root.name == "cluster" and cluster_root != layout.root:
                found.add(str(cluster_root))
    return sorted(found)


def up(layout: ClusterLayout) -> None:
    started = time.monotonic()
    if is_running(layout):
        print(f"cluster already running: reusing it (KUBECONFIG={layout.kubeconfig})")
        return
    others = other_clusters(layout)
    if others:
        raise ClusterStartError(
            f"another checkout's cluster runs on this machine ({', '.join(others)}): the pod "
            "bridge, subnet and kube-proxy's nft tables exist once per machine; run "
            "`make cluster-down` there first"
        )
    # Half a cluster (a crash, a reboot) is cleared rather than patched up.
    down(layout, quiet=True)
    network.require_capabilities()
    binaries = ensure_binaries(layout)
    pki = ensure_pki(layout.pki)
    ensure_pod_python(layout.pod_python)
    network.ensure_bridge()
    for folder in (layout.logs, layout.run, layout.pods):
        folder.mkdir(parents=True, exist_ok=True)

    names = ("etcd", "etcd_peer", "apiserver", "kcm", "scheduler", "proxy_healthz", "proxy_metrics")
    ports = {name: _free_port() for name in names}
    layout.state_file.write_text(json.dumps(ports) + "\n")
    server = f"https://{LOOPBACK}:{ports['apiserver']}"
    write_kubeconfig(layout.kubeconfig, server, pki, ADMIN)
    component_kubeconfigs = {}
    for component, identity in (
        ("kube-controller-manager", CONTROLLER_MANAGER),
        ("kube-scheduler", SCHEDULER),
        ("pod-runner", POD_RUNNER),
        ("kube-proxy", KUBE_PROXY),
    ):
        path = layout.run / f"{component}.kubeconfig"
        write_kubeconfig(path, server, pki, identity)
        component_kubeconfigs[component] = path

    etcd_url = f"http://{LOOPBACK}:{ports['etcd']}"
    peer_url = f"http://{LOOPBACK}:{ports['etcd_peer']}"
    _start(layout, "etcd", [
        str(binaries / "etcd"),
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={etcd_url}",
        f"--advertise-client-urls={etcd_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=default={peer_url}",
        # A throw-away test store on a disk shared with other work: no fsync per write.
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ])  # fmt: skip
    _wait_healthy(layout, "etcd", f"{etcd_url}/health", None)

    _start(layout, "kube-apiserver", [
        str(binaries / "kube-apiserver"),
        f"--etcd-servers={etcd_url}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={ports['apiserver']}",
        f"--cert-dir={layout.run / 'apiserver-certs'}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.service_account_public_key}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        # The pod runner is held to its own node, as a kubelet is.
        "--authorization-mode=Node,RBAC",
        # PodSecurity is on by default; named here with NodeRestriction so that the claim
        # "admission enforces the restricted profile" does not rest on a default.
        "--enable-admission-plugins=NodeRestriction,PodSecurity",
        # As in real clusters: privileged pods are possible in principle, so a refusal in a
        # restricted namespace comes from Pod Security admission, not from this switch.
        "--allow-privileged=true",
        # The aggregator (kube-aggregator, inside this server) proxies APIServices such as
        # custom.metrics.k8s.io to their extension API servers with the front proxy's client
        # certificate and the caller's identity in these headers; the server publishes the CA
        # and names in kube-system/extension-apiserver-authentication for those servers to check.
        f"--requestheader-client-ca-file={pki.front_proxy_ca_cert}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.front_proxy_client_cert}",
        f"--proxy-client-key-file={pki.front_proxy_client_key}",
        "--profiling=false",
    ])  # fmt: skip
    admin = admin_context(pki)
    _wait_healthy(layout, "kube-apiserver", f"{server}/readyz", admin)

    kcm = component_kubeconfigs["kube-controller-manager"]
    _start(layout, "kube-controller-manager", [
        str(binaries / "kube-controller-manager"),
        f"--kubeconfig={kcm}",
        f"--authentication-kubeconfig={kcm}",
        f"--authorization-kubeconfig={kcm}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={ports['kcm']}",
        f"--cert-dir={layout.run / 'kcm-certs'}",
        "--leader-elect=false",
        # Each controller acts as its own ServiceAccount, as on a kubeadm cluster.
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.ca_cert}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--profiling=false",
    ])  # fmt: skip
    sched = component_kubeconfigs["kube-scheduler"]
    _start(layout, "kube-scheduler", [
        str(binaries / "kube-scheduler"),
        f"--kubeconfig={sched}",
        f"--authentication-kubeconfig={sched}",
        f"--authorization-kubeconfig={sched}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={ports['scheduler']}",
        f"--cert-dir={layout.run / 'scheduler-certs'}",
        "--leader-elect=false",
        "--profiling=false",
    ])  # fmt: skip
    _wait_healthy(
        layout,
        "kube-controller-manager",
        f"https://{LOOPBACK}:{ports['kcm']}/healthz",
        _unverified(),
    )
    _wait_healthy(
        layout, "kube-scheduler", f"https://{LOOPBACK}:{ports['scheduler']}/healthz", _unverified()
    )

    _start(
        layout,
        "pod-runner",
        [sys.executable, "-m", "kubecluster.pod_runner",
         "--kubeconfig", str(component_kubeconfigs["pod-runner"]),
         "--cluster-dir", str(layout.root)],
        cwd=CHECKOUT,
        env_pythonpath=True,
    )  # fmt: skip
    _wait_node_ready(layout, server, admin)
    _start(layout, "kube-proxy", [
        str(binaries / "kube-proxy"),
        f"--kubeconfig={component_kubeconfigs['kube-proxy']}",
        "--proxy-mode=nftables",
        f"--hostname-override={NODE_NAME}",
        # The node's address is the bridge's; NodePorts answer only there, never on the
        # machine's own interfaces.
        f"--bind-address={BRIDGE_ADDRESS}",
        f"--nodeport-addresses={POD_CIDR}",
        f"--cluster-cidr={POD_CIDR}",
        f"--healthz-bind-address={LOOPBACK}:{ports['proxy_healthz']}",
        f"--metrics-bind-address={LOOPBACK}:{ports['proxy_metrics']}",
        # The machine's conntrack settings are shared with everything else on it: left as is.
        "--conntrack-max-per-core=0",
        "--conntrack-tcp-timeout-established=0",
        "--conntrack-tcp-timeout-close-wait=0",
    ])  # fmt: skip
    _wait_healthy(layout, "kube-proxy", f"http://{LOOPBACK}:{ports['proxy_healthz']}/healthz", None)
    seconds = time.monotonic() - started
    print(f"cluster up in {seconds:.1f} s: export KUBECONFIG={layout.kubeconfig}")


def _start(
    layout: ClusterLayout,
    component: str,
    command: list[str],
    cwd: Path | None = None,
    env_pythonpath: bool = False,
) -> None:
    env = dict(os.environ)
    if env_pythonpath:
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    layout.log_file(component).unlink(missing_ok=True)
    processes.start_detached(
        command, layout.pid_file(component), layout.log_file(component), cwd=cwd, env=env
    )


def _wait_node_ready(layout: ClusterLayout, server: str, context: ssl.SSLContext) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if processes.running_pid(layout.pid_file("pod-runner")) is None:
            raise ClusterStartError(
                "the pod runner exited during start-up:\n" + _tail(layout.log_file("pod-runner"))
            )
        status, body = _get(f"{server}/api/v1/nodes/{NODE_NAME}", context)
        if status == 200:
            conditions = json.loads(body).get("status", {}).get("conditions", [])
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return
        time.sleep(0.25)
    raise ClusterStartError(f"node {NODE_NAME} not Ready; see {layout.log_file('pod-runner')}")


def down(layout: ClusterLayout, quiet: bool = False) -> None:
    # What the monitoring and autoscaling scenarios started on the host goes first, while the
    # API answers.
    monitoring.stop(layout)
    metrics_adapter.stop(layout)
    service_prometheus.stop(layout)
    for component in COMPONENTS:
        processes.stop(layout.pid_file(component), STOP_GRACE_SECONDS.get(component, 10.0))
    layout.state_file.unlink(missing_ok=True)
    # etcd's data goes: a new cluster starts empty, as a test cluster should.
    shutil.rmtree(layout.etcd_data, ignore_errors=True)
    shutil.rmtree(layout.pods, ignore_errors=True)
    others = other_clusters(layout)
    if others:
        # The bridge and nft tables serve that cluster now (this one's runner removed its own
        # pods' namespaces on SIGTERM): they are left to its own `down`.
        if not quiet:
            print(f"cluster down; the pod network stays for the cluster in {', '.join(others)}")
        return
    # Whatever a killed runner left behind: pod processes in our namespaces, then the
    # namespaces, veths, the bridge (its route goes with it) and kube-proxy's tables.
    for pid in network.processes_in_namespaces():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    network.remove_all()
    if not quiet:
        print("cluster down: no process, network namespace, interface or nft table of it left")
