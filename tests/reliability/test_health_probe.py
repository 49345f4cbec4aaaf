"""The canary probe's verdicts on a real server."""

from __future__ import annotations

import pytest
from inference_tools.local_server import free_port
from pod_hooks import health_probe


@pytest.mark.server
def test_probe_passes_on_a_serving_server(triton_server, capsys):
    url = f"http://{triton_server.http_url}"
    assert health_probe.main([f"--url={url}", "--check-ready"]) == 0
    # Every entry model the server reports gets a canary; its composing models do not.
    assert capsys.readouterr().out.strip() == "digits answered; text_embedding answered"


def test_probe_fails_where_no_server_answers(capsys):
    assert health_probe.main([f"--url=http://127.0.0.1:{free_port()}", "--timeout-seconds=1"]) == 1
    assert "no answer" in capsys.readouterr().err


@pytest.mark.server
def test_probe_fails_for_a_model_the_server_does_not_have(triton_server):
    result = health_probe.probe(f"http://{triton_server.http_url}", models=["text_embeding"])
    assert not result.healthy and "unknown model" in result.reason, result.reason
