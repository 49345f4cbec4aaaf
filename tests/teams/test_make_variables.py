"""Make variables that cannot leak in: a stray NAME/VERSION/MODEL/STORE in the environment
(set by many shells and CI systems) changes nothing; on the command line they count."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.makefile import run_make

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
# The lab runs from the checkout, not from the installed package (Makefile: LAB).
LAB = "python -m lab"
STRAY = {
    "NAME": "stray-name",
    "VERSION": "99",
    "MODEL": "stray-model",
    "STORE": "/stray/store",
    "TRITON_URL": "stray:8000",
    "KUBE_DEPLOYMENT": "stray-deployment",
    "KUBE_NAMESPACE": "stray-namespace",
}


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **(env or {})}
    # Only what this test sets: the developer's own shell may have these too.
    for name in (*STRAY, *(f"PUBLISH_{n}" for n in STRAY), "PERF_MODEL", "MAKEFLAGS"):
        if env is None or name not in env:
            environment.pop(name, None)
    return run_make(*args, env=environment)


def cli_line(
    result: subprocess.CompletedProcess[str], command: str, program: str = "inference-tools"
) -> str:
    lines = [line for line in result.stdout.splitlines() if f"{program} {command}" in line]
    assert len(lines) == 1, result.stdout + result.stderr
    return lines[0]


def test_stray_environment_changes_nothing_that_is_published() -> None:
    args = ("-n", "publish-model", "MODEL=model_repository/digits", "STORE=.work/store")
    clean = cli_line(make(*args), "publish")
    stray = cli_line(make(*args, env=STRAY), "publish")
    assert stray == clean
    assert "stray" not in stray and "--name" not in stray and "--version" not in stray


def test_environment_alone_does_not_start_a_publish() -> None:
    result = make("publish-model", env=STRAY)
    assert result.returncode == 2
    assert "usage: make publish-model" in result.stderr and "PUBLISH_MODEL" in result.stderr


def test_command_line_and_target_named_variables_count() -> None:
    line = cli_line(
        make(
            "-n",
            "publish-model",
            "MODEL=m",
            "STORE=s",
            "NAME=n",
            "VERSION=3",
            "TRITON_URL=h:1",
            env={"PUBLISH_KUBE_DEPLOYMENT": "team-triton"},
        ),
        "publish",
    )
    assert line.split("inference-tools ")[1].split() == [
        "publish", "m", "--store", "s", "--name", "n", "--version", "3",
        "--triton-url", "h:1", "--kube-deployment", "team-triton", "--kube-namespace", "inference",
    ]  # fmt: skip
    rollback = cli_line(make("-n", "rollback-model", "NAME=n", "STORE=s", env=STRAY), "rollback")
    assert rollback.split("inference-tools ")[1].split() == ["rollback", "n", "--store", "s"]


def test_perf_model_from_the_command_line_or_its_own_variable() -> None:
    assert "--model" not in cli_line(make("-n", "perf", env=STRAY), "perf run", LAB)
    assert cli_line(make("-n", "perf", "MODEL=digits"), "perf run", LAB).endswith("--model digits")
    from_env = cli_line(make("-n", "perf", env={"PERF_MODEL": "digits"}), "perf run", LAB)
    assert from_env.endswith("--model digits")


def test_make_image_says_clearly_where_no_docker_engine_runs() -> None:
    docker = shutil.which("docker")
    if docker is not None:
        engine = subprocess.run([docker, "info"], capture_output=True, check=False, timeout=30)
        if engine.returncode == 0:
            pytest.skip("a Docker engine answers here: make image would build")
    result = make("image")
    assert result.returncode == 2
    assert "make image:" in result.stderr and "Docker" in result.stderr
    # Without any docker command at all, the message says so too.
    system_path = "/usr/bin:/bin"
    if any(Path(folder, "docker").exists() for folder in system_path.split(":")):
        return
    bare = run_make("image", env={"PATH": system_path})
    assert bare.returncode == 2 and "no docker command" in bare.stderr
