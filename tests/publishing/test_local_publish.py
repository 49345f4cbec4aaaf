"""Publishing against a real Triton (explicit model control, restricted repository API)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from inference_tools import cli
from inference_tools.model_config import parse_model_config
from inference_tools.publishing.endpoints import HttpEndpoint
from inference_tools.publishing.publisher import PublishError, publish
from inference_tools.publishing.rollout import ready_versions
from inference_tools.publishing.smoke_test import SmokeTestError
from inference_tools.publishing.sources import read_model_source
from inference_tools.publishing.stores import MANIFEST_FILE, LocalFolderStore
from inference_tools.publishing.validation import ModelValidationError
from inference_tools.publishing.versions import served_versions

from tests.publishing.load import VersionedLoad, infer_once
from tests.publishing.models import (
    ensemble_folder,
    python_folder,
    scaler_folder,
    tree_digest,
)
from tests.publishing.servers import ADMIN_KEY

pytestmark = pytest.mark.server


def publish_folder(folder: Path, store_dir: Path, server, admin, **options):
    return publish(
        [read_model_source(folder)],
        LocalFolderStore(store_dir),
        {"local": HttpEndpoint(server.http_url)},
        admin=admin,
        report=lambda line: None,
        **options,
    )


def test_second_version_takes_over_under_load_with_zero_failed_requests(
    tmp_path, store_dir, store_server, admin
):
    first = publish_folder(scaler_folder(tmp_path, "scaler", 1.0), store_dir, store_server, admin)
    assert first.published == [("scaler", 1)]
    assert infer_once(store_server.http_url, "scaler") == ("1", 1.0)

    with VersionedLoad(store_server.http_url, "scaler") as load:
        time.sleep(1.0)  # requests are flowing before the switch starts
        second = publish_folder(
            scaler_folder(tmp_path, "scaler", 2.0), store_dir, store_server, admin
        )
        switched_at = time.monotonic()
        time.sleep(1.0)

    answered = Counter(a.version for a in load.answers)
    print(f"\npublish timings (s): {second.timings_s}; answers by version: {answered}")
    assert load.failures == []
    assert second.published == [("scaler", 2)]
    versions_seen = Counter((a.version, a.value) for a in load.answers)
    assert versions_seen[("1", 1.0)] > 0 and versions_seen[("2", 2.0)] > 0
    assert set(versions_seen) == {("1", 1.0), ("2", 2.0)}
    assert all(a.version == "2" for a in load.answers if a.started > switched_at)
    # Both versions stay in the store; the config names the served one.
    store = LocalFolderStore(store_dir)
    assert store.version_folders("scaler") == [1, 2]
    assert served_versions(parse_model_config(store.read_config("scaler"))) == [2]
    assert store.read_manifest("scaler", 2)["files"]["model.onnx"]["size"] > 0
    assert ready_versions(HttpEndpoint(store_server.http_url), "scaler", admin) == [2]
    assert second.serving == [("local", "scaler", "2")]
    assert second.timings_s["publish_to_serving_s"] > second.timings_s["switch_to_serving_s"]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, store_dir, store_server, admin) -> str:
    """A model serving version 1, for the tests that try to replace it with broken ones."""
    source = tmp_path_factory.mktemp("guarded")
    publish_folder(scaler_folder(source, "guarded", 3.0), store_dir, store_server, admin)
    return "guarded"


def _bad_onnx(root: Path) -> Path:
    folder = scaler_folder(root, "guarded", 5.0)
    (folder / "1" / "model.onnx").write_bytes(b"not an onnx graph")
    return folder


def _mismatched_config(root: Path) -> Path:
    folder = scaler_folder(root, "guarded", 5.0)
    config = folder / "config.pbtxt"
    config.write_text(
        config.read_text().replace("dims: [ 3 ] } ]\noutput", "dims: [ 4 ] } ]\noutput")
    )
    return folder


def _raises_at_load(root: Path) -> Path:
    return python_folder(root, "guarded", 1.0, initialize="raise RuntimeError('no weights here')")


@pytest.mark.parametrize(
    ("make_broken", "error", "message"),
    [
        (_bad_onnx, ModelValidationError, "fails onnx.checker"),
        (_mismatched_config, ModelValidationError, r"dims\[0\] is 4 in the config"),
        (_raises_at_load, SmokeTestError, "no weights here"),
    ],
    ids=["bad-onnx", "config-mismatch", "python-raises-at-load"],
)
def test_a_broken_model_leaves_the_store_and_the_serving_version_alone(
    tmp_path, store_dir, store_server, admin, guarded, make_broken, error, message
):
    before = tree_digest(store_dir / guarded)
    with pytest.raises(error, match=message):
        publish_folder(make_broken(tmp_path), store_dir, store_server, admin)
    assert tree_digest(store_dir / guarded) == before
    assert infer_once(store_server.http_url, guarded) == ("1", 3.0)


def test_a_server_that_cannot_load_the_new_version_is_rolled_back(
    tmp_path, store_dir, store_server, admin, guarded
):
    # Without the local smoke test the failure is met on the server itself, after the switch.
    before = tree_digest(store_dir / guarded)
    broken = _raises_at_load(tmp_path)
    with (
        VersionedLoad(store_server.http_url, guarded, threads=2) as load,
        pytest.raises(PublishError, match=r"rolled back.*no weights here"),
    ):
        publish_folder(broken, store_dir, store_server, admin, smoke_test=False)
    assert load.failures == []
    assert {a.version for a in load.answers} == {"1"}
    assert tree_digest(store_dir / guarded) == before
    assert ready_versions(HttpEndpoint(store_server.http_url), guarded, admin) == [1]


def test_the_repository_api_refuses_a_publish_without_the_admin_key(
    tmp_path, store_dir, store_server, monkeypatch
):
    monkeypatch.delenv("TRITON_ADMIN_KEY", raising=False)
    folder = scaler_folder(tmp_path, "keyless", 1.0)
    status = cli.main(
        ["publish", str(folder), "--store", str(store_dir), "--triton-url", store_server.http_url]
    )
    assert status == 1
    assert not (store_dir / "keyless").exists()  # the new model was removed again


def test_cli_publish_of_a_bare_onnx_file_then_rollback(
    tmp_path, store_dir, store_server, monkeypatch, capsys
):
    from tests.publishing.models import scaler_graph

    monkeypatch.setenv("TRITON_ADMIN_KEY", ADMIN_KEY)
    common = ["--store", str(store_dir), "--triton-url", store_server.http_url]
    for factor in (1.0, 4.0):
        graph = scaler_graph(tmp_path / f"x{factor:g}" / "tripler.onnx", factor)
        assert cli.main(["publish", str(graph), *common]) == 0
    output = capsys.readouterr().out
    assert "published tripler version 2" in output
    assert f"http://{store_server.http_url}  tripler -> 2" in output
    assert infer_once(store_server.http_url, "tripler") == ("2", 4.0)

    assert cli.main(["rollback", "tripler", *common]) == 0
    assert "tripler: version 1 serves (was [2])" in capsys.readouterr().out
    assert infer_once(store_server.http_url, "tripler") == ("1", 1.0)
    store = LocalFolderStore(store_dir)
    assert store.version_folders("tripler") == [1, 2]  # rollback never deletes a version

    # The next publish takes a new number: version 2 stays what it was.
    graph = scaler_graph(tmp_path / "x5" / "tripler.onnx", 5.0)
    assert cli.main(["publish", str(graph), *common]) == 0
    assert infer_once(store_server.http_url, "tripler") == ("3", 5.0)
    assert cli.main(["publish", str(graph), "--version", "2", *common]) == 1
    assert "already in" in capsys.readouterr().err


def test_an_ensemble_and_its_models_publish_in_one_call(tmp_path, store_dir, store_server, admin):
    sources = [
        read_model_source(ensemble_folder(tmp_path, "pipeline", "doubler", "plus_one")),
        read_model_source(scaler_folder(tmp_path, "doubler", 2.0)),
        read_model_source(python_folder(tmp_path, "plus_one", 1.0)),
    ]
    result = publish(
        sources,
        LocalFolderStore(store_dir),
        {"local": HttpEndpoint(store_server.http_url)},
        admin=admin,
        report=lambda line: None,
    )
    assert result.published == [("doubler", 1), ("plus_one", 1), ("pipeline", 1)]
    # The ensemble's version folder exists (Triton needs it) and holds only the manifest.
    assert [p.name for p in (store_dir / "pipeline" / "1").iterdir()] == [MANIFEST_FILE]
    assert infer_once(store_server.http_url, "pipeline", "IN", "OUT") == ("1", 3.0)
