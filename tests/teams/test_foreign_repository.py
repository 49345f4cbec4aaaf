"""A repository the project has never seen, served by a real tritonserver: roles and probes.

Two ensembles of Python models and a plain ONNX model under names no code mentions
(foreign_repository.py). What the project does with them must come from their configs, read
from the folder or from the running server alike, with the admin APIs locked as in the
Deployment.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from inference_tools import model_config
from inference_tools.local_server import LocalTritonServer
from pod_hooks import health_probe, model_roles

from tests.teams.foreign_repository import (
    COMPOSING,
    ENSEMBLES,
    ENTRY_MODELS,
    build_foreign_repository,
)

ADMIN_KEY = "team-admin-key"
PACKAGE_DIR = Path(model_roles.__file__).parent


@pytest.fixture(scope="module")
def foreign_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_foreign_repository(tmp_path_factory.mktemp("foreign") / "models")


@pytest.fixture(scope="module")
def foreign_server(foreign_repository: Path):
    locked = f"model-repository,model-config:{model_roles.ADMIN_HEADER}={ADMIN_KEY}"
    with LocalTritonServer(
        foreign_repository, extra_args=[f"--http-restricted-api={locked}"]
    ) as server:
        yield server


def test_roles_from_the_folder(foreign_repository: Path) -> None:
    roles = model_config.roles_from_folder(foreign_repository)
    assert roles.ensembles == ENSEMBLES
    assert roles.composing == COMPOSING
    assert roles.entry_models == ENTRY_MODELS
    assert roles.canary_request("doubler") == {
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 1, 1, 1]}]
    }


def test_an_override_must_name_models_that_exist(foreign_repository: Path) -> None:
    roles = model_config.roles_from_folder(foreign_repository)
    assert roles.select(["upper"]) == ("upper",)
    with pytest.raises(model_roles.ModelRolesError, match=r"shout_lenght.*doubler, length"):
        roles.select(["shout_lenght"])


def test_a_folder_without_models_is_refused(tmp_path: Path) -> None:
    with pytest.raises(model_roles.ModelRolesError, match="no model folder"):
        model_config.roles_from_folder(tmp_path)


@pytest.mark.server
def test_roles_from_the_server_match_the_folder(foreign_server, foreign_repository) -> None:
    url = f"http://{foreign_server.http_url}"
    served = model_roles.roles_from_server(url, ADMIN_KEY)
    folder = model_config.roles_from_folder(foreign_repository)
    assert (served.ensembles, served.composing, served.entry_models) == (
        folder.ensembles,
        folder.composing,
        folder.entry_models,
    )
    assert {m: served.canary_request(m) for m in ENTRY_MODELS} == {
        m: folder.canary_request(m) for m in ENTRY_MODELS
    }


@pytest.mark.server
def test_probe_canaries_every_entry_model_with_the_admin_key(foreign_server) -> None:
    url = f"http://{foreign_server.http_url}"
    result = health_probe.probe(url, ready_first=True, admin_key=ADMIN_KEY)
    assert result.healthy, result.reason
    assert result.reason == "doubler answered; shout answered; shout_length answered"


@pytest.mark.server
def test_probe_without_the_admin_key_says_what_to_do(foreign_server) -> None:
    result = health_probe.probe(f"http://{foreign_server.http_url}", admin_key="")
    assert not result.healthy
    assert model_roles.ADMIN_KEY_ENV in result.reason and "name the models" in result.reason
    # Named models need no restricted API.
    named = health_probe.probe(
        f"http://{foreign_server.http_url}", models=["doubler"], admin_key=""
    )
    assert named.healthy and named.reason == "doubler answered"


@pytest.mark.server
def test_probe_runs_on_the_standard_library_alone_as_in_the_image(
    foreign_server, tmp_path: Path
) -> None:
    # The image's layout: the pod hooks' folder copied whole, the probe run as a file; `-I -S`
    # keep this project and site-packages (numpy, protobuf, tritonclient) out of reach.
    unit = tmp_path / "pod_hooks"
    shutil.copytree(PACKAGE_DIR, unit, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            str(unit / "health_probe.py"),
            f"--url=http://{foreign_server.http_url}",
        ],
        env={model_roles.ADMIN_KEY_ENV: ADMIN_KEY},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "doubler answered; shout answered; shout_length answered"


@pytest.mark.server
def test_ensembles_report_no_pending_requests_and_no_queue(foreign_repository, tmp_path) -> None:
    """What the recording rules rely on to name no model, on Triton 2.51 (docs/autoscaling.md)."""
    import threading
    import time
    import urllib.request

    from inference_tools.triton_metrics import fetch_metrics_text, per_model

    slow = build_foreign_repository(tmp_path / "slow", upper_delay_ms=30)
    with LocalTritonServer(slow) as server:
        body = json.dumps(
            {"inputs": [{"name": "WORDS", "shape": [1, 1], "datatype": "BYTES", "data": ["hi"]}]}
        ).encode()
        url = f"http://{server.http_url}/v2/models/shout_length/infer"
        metrics_url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        stop = time.monotonic() + 4
        peak_pending: dict[str, float] = {}

        def client() -> None:
            while time.monotonic() < stop:
                request = urllib.request.Request(url, data=body, method="POST")
                with urllib.request.urlopen(request, timeout=30) as reply:
                    reply.read()

        threads = [threading.Thread(target=client) for _ in range(6)]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            pending = per_model(
                fetch_metrics_text(metrics_url), "nv_inference_pending_request_count"
            )
            for model, value in pending.items():
                peak_pending[model] = max(peak_pending.get(model, 0.0), value)
            time.sleep(0.2)
        text = fetch_metrics_text(metrics_url)
    queue = per_model(text, "nv_inference_queue_duration_us")
    requests = per_model(text, "nv_inference_request_success")
    per_request = {m: queue[m] / requests[m] for m in queue if requests[m]}
    assert peak_pending["upper"] >= 2 and peak_pending["shout_length"] == 0, peak_pending
    # The ensemble's own queue time is never the longest: the rules' max picks a composing model.
    assert per_request["shout_length"] < per_request["upper"] / 100, per_request


def test_models_command_lists_the_roles_as_json(foreign_repository: Path, capsys) -> None:
    from inference_tools.cli import main

    assert main(["models", "--model-repository", str(foreign_repository), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document == {
        "entry_models": list(ENTRY_MODELS),
        "ensembles": list(ENSEMBLES),
        "composing": list(COMPOSING),
        "default_target": "shout",
    }
