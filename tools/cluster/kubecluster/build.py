"""Build the control plane's binaries with `go build` from the pinned module, once per version.

The binaries land in `.work/cluster/bin/<version key>/`; Go's own module and build caches stay in
their user-level defaults (`go env GOMODCACHE GOCACHE`), outside the checkout, so a fresh clone on
the same machine (CI) links from a warm build cache instead of compiling Kubernetes again.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kubecluster.layout import GO_MODULE_DIR, ClusterLayout, PinnedVersions, pinned_versions

GO_CANDIDATES = ("/usr/local/go/bin/go",)


@dataclass(frozen=True)
class Binary:
    name: str
    package: str
    module: str


def binaries(versions: PinnedVersions) -> tuple[Binary, ...]:
    kubernetes = f"k8s.io/kubernetes {versions.kubernetes}"
    return (
        Binary("etcd", "go.etcd.io/etcd/server/v3", f"go.etcd.io/etcd/server/v3 {versions.etcd}"),
        *(
            Binary(name, f"k8s.io/kubernetes/cmd/{name}", kubernetes)
            for name in (
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kube-proxy",
                # The client at the server's release: the machine's kubectl may be older than
                # the supported skew.
                "kubectl",
            )
        ),
    )


class BuildError(RuntimeError):
    pass


def go_binary() -> str:
    found = shutil.which("go")
    if found:
        return found
    for candidate in GO_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise BuildError("no `go` on PATH or at /usr/local/go/bin/go: install Go 1.24 or newer")


def version_ldflags(kubernetes_version: str) -> str:
    """What Kubernetes' own release build stamps into each binary, so that `/version` and
    `kubectl version` report the release instead of v0.0.0-master."""
    major, minor = kubernetes_version.lstrip("v").split(".")[:2]
    flags = []
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={kubernetes_version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
        ]
    return " ".join(flags)


def binary_dir(layout: ClusterLayout, versions: PinnedVersions) -> Path:
    return layout.bin_root / versions.key


def ensure_binaries(layout: ClusterLayout, log: bool = True) -> Path:
    """Return the folder holding every binary, building the missing ones (seconds per binary
    are printed, the cold figures docs/cluster.md quotes)."""
    versions = pinned_versions()
    target = binary_dir(layout, versions)
    missing = [b for b in binaries(versions) if not (target / b.name).is_file()]
    if not missing:
        return target
    target.mkdir(parents=True, exist_ok=True)
    go = go_binary()
    env = dict(os.environ, CGO_ENABLED="0")
    for binary in missing:
        started = time.monotonic()
        partial = target / f".{binary.name}.partial"
        # nice: the build must not starve the servers and tests sharing this machine.
        command = [
            "nice", "-n", "10", go, "build",
            "-ldflags", version_ldflags(versions.kubernetes),
            "-o", str(partial), binary.package,
        ]  # fmt: skip
        result = subprocess.run(
            command, cwd=GO_MODULE_DIR, env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
            raise BuildError(
                f"building {binary.name} ({binary.package}) from module {binary.module} "
                f"failed with exit code {result.returncode}:\n{tail}"
            )
        partial.rename(target / binary.name)
        if log:
            seconds = time.monotonic() - started
            print(f"built {binary.name} from {binary.module} in {seconds:.0f} s", file=sys.stderr)
    return target


def required_version(module_dir: Path, module: str) -> str:
    """The version of `module` that `module_dir`/go.mod pins (one place per tool)."""
    text = (module_dir / "go.mod").read_text()
    match = re.search(rf"^\s*{re.escape(module)} (v\S+)", text, re.MULTILINE)
    if not match:
        raise BuildError(f"{module} is not required in {module_dir}/go.mod")
    return match.group(1)


def ensure_tool(layout: ClusterLayout, module_dir: Path, module: str, package: str,
                name: str) -> Path:  # fmt: skip
    """A binary of a tool around the cluster (an operator, an adapter), built once per release
    from its own Go module folder, whose Kubernetes client libraries may be of another release
    than the control plane's; cached in `.work/cluster/bin/<name>-<version>/`."""
    version = required_version(module_dir, module)
    binary = layout.bin_root / f"{name}-{version}" / package.rsplit("/", 1)[-1]
    if binary.is_file():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f".{binary.name}.partial")
    started = time.monotonic()
    result = subprocess.run(
        ["nice", "-n", "10", go_binary(), "build", "-o", str(partial), package],
        cwd=module_dir, env=dict(os.environ, CGO_ENABLED="0"),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise BuildError(f"building {name} from {module} {version} failed:\n{tail}")
    partial.rename(binary)
    print(f"built {name} {version} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return binary
