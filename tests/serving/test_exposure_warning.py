"""`inference-tools serve --address 0.0.0.0` says what it opens to the network."""

from __future__ import annotations

import pytest
from inference_tools import cli
from inference_tools.exposure import ADMIN_API_CATEGORIES, exposure_warning

LOCKED = ",".join(ADMIN_API_CATEGORIES) + ":x-triton-admin-key=secret"


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_is_quiet(address):
    assert exposure_warning(address, []) is None


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.168.1.10", "myhost"])
def test_any_other_address_warns_of_the_admin_and_shared_memory_apis(address):
    warning = exposure_warning(address, [])
    assert warning is not None
    assert "shared-memory" in warning and "model-repository" in warning
    assert f"--address {address} -- --http-restricted-api=" in warning


def test_locking_every_category_on_both_protocols_silences_it():
    args = [f"--http-restricted-api={LOCKED}", f"--grpc-restricted-protocol={LOCKED}"]
    assert exposure_warning("0.0.0.0", args) is None


def test_a_category_left_open_on_one_protocol_still_warns():
    partial = LOCKED.replace("shared-memory,", "")
    args = [f"--http-restricted-api={LOCKED}", f"--grpc-restricted-protocol={partial}"]
    warning = exposure_warning("0.0.0.0", args)
    assert warning is not None and "call Triton's shared-memory APIs" in warning


def test_serve_prints_the_warning_before_starting(monkeypatch, capsys, tmp_path):
    def refuse_to_start(*args, **kwargs):
        raise RuntimeError("not started in this test")

    monkeypatch.setattr("inference_tools.commands.serve.LocalTritonServer", refuse_to_start)
    argv = ["serve", "--no-build", "--model-repository", str(tmp_path), "--address", "0.0.0.0"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.index("WARNING: listening on 0.0.0.0") < err.index("not started in this test")
