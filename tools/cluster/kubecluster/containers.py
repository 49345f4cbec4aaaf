"""One container of a pod as real processes: its own mount, UTS and PID namespaces inside the
pod's network namespace, the manifest's emptyDir volumes as mounts, its user, no new privileges
and no capabilities where the spec says so; probes and hooks run inside the same namespaces."""

from __future__ import annotations

import contextlib
import http.client
import os
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kubecluster.network import NETNS_DIR
from kubecluster.pod_spec import ContainerPlan, Probe

NSENTER = "/usr/bin/nsenter"
UNSHARE = "/usr/bin/unshare"
SETPRIV = "/usr/bin/setpriv"


def _user_switch(plan: ContainerPlan) -> list[str]:
    command = [SETPRIV, f"--reuid={plan.uid}", f"--regid={plan.gid}"]
    command.append(
        f"--groups={','.join(map(str, plan.groups))}" if plan.groups else "--clear-groups"
    )
    if plan.no_new_privileges:
        command.append("--no-new-privs")
    if plan.drop_all_capabilities:
        command += ["--inh-caps=-all", "--bounding-set=-all"]
    return [*command, "--"]


# Where a container's mount namespace keeps a view of the host's root while its volumes are
# mounted, so that folders hidden by a volume can be bound back (outside every volume path).
HOST_ROOT_VIEW = Path("/run/kubecluster-host-root")


def _is_within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _mount_script(plan: ContainerPlan, hostname: str) -> str:
    lines = ["set -e", f"/bin/hostname {shlex.quote(hostname)}"]
    hidden = [p for p in plan.host_paths if any(_is_within(p, m.path) for m in plan.mounts)]
    # Sources are read through the host's view when a mount may already hide them.
    source_root = ""
    if hidden:
        if any(_is_within(str(HOST_ROOT_VIEW), m.path) for m in plan.mounts):
            raise ValueError(f"a volume of {plan.name!r} is mounted over {HOST_ROOT_VIEW}")
        HOST_ROOT_VIEW.mkdir(parents=True, exist_ok=True)
        source_root = str(HOST_ROOT_VIEW)
        lines.append(f"/bin/mount --rbind / {source_root}")
    for mount in plan.mounts:
        target = shlex.quote(mount.path)
        if mount.folder is not None:
            mount.folder.mkdir(parents=True, exist_ok=True)
            os.chown(mount.folder, plan.uid, plan.gid)
            source = shlex.quote(source_root + str(mount.folder))
            lines.append(f"/bin/mount --bind {source} {target}")
        else:
            size = f",size={mount.tmpfs_bytes}" if mount.tmpfs_bytes else ""
            lines.append(f"/bin/mount -t tmpfs -o mode=1777{size} tmpfs {target}")
    for path in hidden:
        # E.g. a checkout under /tmp beneath the pod's /tmp emptyDir: bound back where it was.
        quoted = shlex.quote(path)
        lines.append(f"/bin/mkdir -p {quoted}")
        lines.append(f"/bin/mount --rbind {shlex.quote(source_root + path)} {quoted}")
        if plan.read_only_root:
            lines.append(f"/bin/mount -o remount,bind,ro {quoted}")
    if hidden:
        lines.append(f"/bin/umount --lazy {source_root}")
    if plan.read_only_root:
        # Only the root mount of this namespace: /proc, /dev, /sys and the volumes above stay
        # as they are, as with an image's read-only rootfs.
        lines.append("/bin/mount -o remount,bind,ro /")
    return "\n".join(lines)


@dataclass
class RunningContainer:
    plan: ContainerPlan
    launcher: subprocess.Popen[bytes]
    pid1: int
    started_at: float

    def exited(self) -> int | None:
        return self.launcher.poll()


def start_container(
    plan: ContainerPlan, namespace: str, hostname: str, log: Path
) -> RunningContainer:
    log.parent.mkdir(parents=True, exist_ok=True)
    script = _mount_script(plan, hostname) + "\nexec " + shlex.join(_user_switch(plan) + plan.argv)
    command = [
        NSENTER, f"--net={NETNS_DIR / namespace}", "--",
        # --kill-child: the container's PID 1 dies with its launcher, never orphaned.
        UNSHARE, "--mount", "--uts", "--pid", "--fork", "--mount-proc",
        "--propagation", "private", "--kill-child",
        "/bin/sh", "-c", script,
    ]  # fmt: skip
    with log.open("ab") as out:
        launcher = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=plan.env, start_new_session=True,
        )  # fmt: skip
    pid1 = _child_of(launcher.pid)
    return RunningContainer(plan, launcher, pid1, time.monotonic())


def _child_of(pid: int, timeout: float = 5.0) -> int:
    """unshare --fork runs the container's PID 1 as its child: that is the pid to signal."""
    deadline = time.monotonic() + timeout
    children_file = Path(f"/proc/{pid}/task/{pid}/children")
    while time.monotonic() < deadline:
        try:
            children = children_file.read_text().split()
        except OSError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.02)
    return pid


def exec_in(container: RunningContainer, argv: list[str], timeout: float) -> tuple[int, str]:
    """Run argv in the container's namespaces as its user; (-1, ...) on timeout."""
    plan = container.plan
    command = [
        NSENTER, f"--target={container.pid1}", "--net", "--mount", "--uts", "--pid", "--",
        *_user_switch(plan), *argv,
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=plan.env, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)
        process.communicate()
        return -1, f"timed out after {timeout:.1f} s"
    return process.returncode, output.decode(errors="replace")[-2000:]


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def signal_container(container: RunningContainer, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(container.pid1, sig)


def kill_container(container: RunningContainer) -> None:
    """SIGKILL to PID 1 takes every process of its PID namespace with it."""
    signal_container(container, signal.SIGKILL)
    _kill_group(container.launcher.pid)
    container.launcher.wait()


def probe_port(port: str | int | None, plan: ContainerPlan) -> int | None:
    """The kubelet resolves a named probe port in the probed container's own ports only (a
    sidecar's port name does not count), then tries the name as a number; a probe whose port
    does not resolve fails."""
    if isinstance(port, str):
        if port in plan.ports:
            return plan.ports[port]
        port = int(port) if port.isdigit() else None
    return port if port is not None and 0 < port < 65536 else None


def run_probe(probe: Probe, container: RunningContainer, pod_ip: str) -> tuple[bool, str]:
    if probe.kind == "exec":
        code, output = exec_in(container, probe.spec["command"], probe.timeout_seconds)
        return code == 0, f"exit {code}: {output.strip()[-300:]}"
    port_number = probe_port(probe.spec.get("port"), container.plan)
    if port_number is None:
        return False, f"couldn't find port {probe.spec.get('port')!r} in the container's ports"
    host = probe.spec.get("host") or pod_ip
    if probe.kind == "tcpSocket":
        try:
            with socket.create_connection((host, port_number), timeout=probe.timeout_seconds):
                return True, "connected"
        except OSError as error:
            return False, str(error)
    if probe.spec.get("scheme", "HTTP") != "HTTP":
        return False, "only HTTP probes are supported"
    connection = http.client.HTTPConnection(host, port_number, timeout=probe.timeout_seconds)
    try:
        headers = {h["name"]: h["value"] for h in probe.spec.get("httpHeaders") or []}
        headers.setdefault("User-Agent", "kube-probe/pod-runner")
        connection.request("GET", probe.spec.get("path", "/"), headers=headers)
        status = connection.getresponse().status
    except OSError as error:
        return False, str(error)
    finally:
        connection.close()
    return 200 <= status < 400, f"HTTP {status}"
