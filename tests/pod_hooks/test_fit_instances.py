"""triton-fit-instances: CPUs from the cgroup limit, the plan, and the configs it rewrites."""

import subprocess
import sys
from pathlib import Path

import pytest
from inference_tools.model_config import read_model_config
from inference_tools.paths import MODEL_REPOSITORY
from pod_hooks import fit_instances
from pod_hooks.fit_instances import (
    FitError,
    available_cpus,
    cgroup_cpu_limit,
    fitted_command,
    plan,
    whole_cpus,
    write_fitted_repository,
)
from tritonclient.grpc.model_config_pb2 import ModelInstanceGroup

KIND_CPU = ModelInstanceGroup.KIND_CPU


def test_cgroup_v2_quota_and_no_limit(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 2.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None


def test_cgroup_v1_quota_and_no_limit(tmp_path: Path) -> None:
    cpu = tmp_path / "cpu"
    cpu.mkdir()
    (cpu / "cpu.cfs_quota_us").write_text("400000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(tmp_path) == 4.0
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(tmp_path) is None


def test_limit_caps_the_affinity_set(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert available_cpus(tmp_path) == 0.5
    assert available_cpus(tmp_path / "absent") >= 1


@pytest.mark.parametrize(("cpus", "whole"), [(0.5, 1), (1.0, 1), (1.5, 2), (16.0, 16)])
def test_whole_cpus_rounds_up(cpus: float, whole: int) -> None:
    assert whole_cpus(cpus) == whole


def test_plan_matches_the_shipped_configs_on_the_base_pod() -> None:
    fits = plan(2, encoder_on_gpu=False)
    assert (fits["minilm"].count, fits["minilm"].threads) == (2, 1)
    assert (fits["tokenizer"].count, fits["tokenizer"].threads) == (1, 1)
    for model, fit in fits.items():
        config = read_model_config(MODEL_REPOSITORY / model / "config.pbtxt")
        assert [g.count for g in config.instance_group] == [fit.count], model
        assert config.parameters[fit.thread_parameter].string_value == str(fit.threads), model


def test_sixteen_cpus_without_a_gpu(tmp_path: Path) -> None:
    fits = write_fitted_repository(MODEL_REPOSITORY, tmp_path / "repo", 16)
    minilm = read_model_config(tmp_path / "repo" / "minilm" / "config.pbtxt")
    assert [g.count for g in minilm.instance_group] == [8]
    assert minilm.parameters["intra_op_thread_count"].string_value == "2"
    tokenizer = read_model_config(tmp_path / "repo" / "tokenizer" / "config.pbtxt")
    assert [(g.kind, g.count) for g in tokenizer.instance_group] == [(KIND_CPU, 2)]
    assert fits["tokenizer"].count == 2
    # The encoder stays on the CPU: the token budget sized for it stays too.
    source_tokenizer = read_model_config(MODEL_REPOSITORY / "tokenizer" / "config.pbtxt")
    budget = source_tokenizer.parameters["max_request_tokens"].string_value
    assert tokenizer.parameters["max_request_tokens"].string_value == budget
    # Everything else is the source, linked: the encoder is not copied.
    encoder = tmp_path / "repo" / "minilm" / "1" / "model.onnx"
    assert (
        encoder.is_symlink()
        and encoder.resolve() == (MODEL_REPOSITORY / "minilm" / "1" / "model.onnx").resolve()
    )
    # The source configs are untouched.
    source = read_model_config(MODEL_REPOSITORY / "minilm" / "config.pbtxt")
    assert [g.count for g in source.instance_group] == [2]


def test_gpu_config_keeps_the_encoder_and_scales_the_tokenizer(tmp_path: Path) -> None:
    fits = write_fitted_repository(MODEL_REPOSITORY, tmp_path / "repo", 16, config_name="gpu")
    assert "minilm" not in fits and fits["tokenizer"].count == 8
    gpu = tmp_path / "repo" / "minilm" / "configs" / "gpu.pbtxt"
    assert gpu.is_symlink()  # not rewritten
    tokenizer_dir = tmp_path / "repo" / "tokenizer"
    rewritten = tokenizer_dir / "configs" / "gpu.pbtxt"
    if not rewritten.exists():
        rewritten = tokenizer_dir / "config.pbtxt"
    config = read_model_config(rewritten)
    assert [(g.kind, g.count) for g in config.instance_group] == [(KIND_CPU, 8)]
    # The CPU-sized token budget is lifted to every request the other limits allow.
    max_tokens = int(config.parameters["max_tokens"].string_value)
    lifted = config.max_batch_size * max_tokens
    assert config.parameters["max_request_tokens"].string_value == str(lifted)


def test_a_tokenizer_config_without_a_token_budget_is_left_as_it_is() -> None:
    text = 'max_batch_size: 8\nparameters { key: "max_tokens", value: { string_value: "128" } }\n'
    assert fit_instances.lift_request_tokens(text, Path("config.pbtxt")) == text
    budget = 'parameters { key: "max_request_tokens", value: { string_value: "100" } }\n'
    assert fit_instances.lift_request_tokens(text + budget, Path("c")) == text + budget.replace(
        '"100"', '"1024"'
    )


def test_command_points_at_the_copy_and_passes_remote_stores_through(tmp_path: Path) -> None:
    lines: list[str] = []
    command = ["tritonserver", f"--model-repository={MODEL_REPOSITORY}", "--http-port=8000"]
    fitted = fitted_command(command, 4, tmp_path / "out", lines.append)
    assert fitted == ["tritonserver", f"--model-repository={tmp_path / 'out'}", "--http-port=8000"]
    assert "minilm 2x2" in lines[0] and "tokenizer 1x1" in lines[0]
    remote = ["tritonserver", "--model-repository=s3://bucket/models"]
    assert fitted_command(remote, 4, tmp_path / "unused", lines.append) == remote
    with pytest.raises(FitError, match="no --model-repository"):
        fitted_command(["tritonserver"], 4, tmp_path / "x", lines.append)


def test_a_config_in_another_form_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "repo" / "tokenizer"
    model.mkdir(parents=True)
    (model / "config.pbtxt").write_text('name: "tokenizer"\ninstance_group [\n  { count: 3 }\n]\n')
    with pytest.raises(FitError, match="instance_group"):
        write_fitted_repository(tmp_path / "repo", tmp_path / "out", 4)


def test_script_execs_the_server_command_with_the_repository_replaced(tmp_path: Path) -> None:
    script = Path(fit_instances.__file__)
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--cpus",
            "2",
            "--out",
            str(tmp_path / "fitted"),
            "--",
            "echo",
            f"--model-repository={MODEL_REPOSITORY}",
            "--strict-readiness=true",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    log, echoed = result.stdout.splitlines()
    assert "2 CPUs: minilm 2x1, tokenizer 1x1" in log
    assert echoed == f"--model-repository={tmp_path / 'fitted'} --strict-readiness=true"
