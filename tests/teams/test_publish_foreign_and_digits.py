"""Publishing what the project never names: the digit classifier and a team's repository (two
ensembles and a plain model) go into an empty store, are served, and pass the probe, with no
edit outside the repository."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from inference_tools import model_config
from inference_tools.digits_classifier import LABEL, MODEL_NAME, PIXELS, load_split
from inference_tools.local_server import LocalTritonServer
from inference_tools.publishing.endpoints import HttpEndpoint
from inference_tools.publishing.publisher import publish
from inference_tools.publishing.rollout import AdminAccess
from inference_tools.publishing.sources import read_model_source
from inference_tools.publishing.stores import LocalFolderStore
from pod_hooks import health_probe, model_roles
from pod_hooks.model_roles import ADMIN_HEADER

from tests.publishing.servers import ADMIN_KEY, explicit_mode_args
from tests.teams.foreign_repository import ENTRY_MODELS, build_foreign_repository

pytestmark = pytest.mark.server


def test_digits_and_a_foreign_repository_publish_serve_and_probe(
    tmp_path: Path, model_repository: Path
) -> None:
    foreign = build_foreign_repository(tmp_path / "team")
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    # Composing models before the ensembles that call them, as model_roles orders them.
    roles = model_config.roles_from_folder(foreign)
    order = [*roles.composing, *roles.entry_models]
    sources = [read_model_source(model_repository / MODEL_NAME)]
    sources += [read_model_source(foreign / name) for name in order]
    with LocalTritonServer(store_dir, extra_args=explicit_mode_args()) as server:
        result = publish(
            sources,
            LocalFolderStore(store_dir),
            {"local": HttpEndpoint(server.http_url)},
            admin=AdminAccess(ADMIN_HEADER, ADMIN_KEY),
            report=lambda line: None,
        )
        assert sorted(result.published) == sorted((name, 1) for name in [MODEL_NAME, *order])

        split = load_split()
        client = httpclient.InferenceServerClient(server.http_url)
        try:
            pixels = httpclient.InferInput(PIXELS, [16, 64], "FP32")
            pixels.set_data_from_numpy(split.held_out_pixels[:16])
            labels = client.infer(MODEL_NAME, [pixels]).as_numpy(LABEL)[:, 0]
        finally:
            client.close()
        assert np.mean(labels == split.held_out_labels[:16]) >= 0.9

        served = model_roles.roles_from_server(f"http://{server.http_url}", ADMIN_KEY)
        assert served.entry_models == tuple(sorted([MODEL_NAME, *ENTRY_MODELS]))
        probe = health_probe.probe(f"http://{server.http_url}", admin_key=ADMIN_KEY)
        assert probe.healthy, probe.reason
        assert probe.reason.count("answered") == 4
