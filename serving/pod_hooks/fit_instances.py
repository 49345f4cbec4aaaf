#!/usr/bin/env python3
"""Fit the CPU-side model instances to the CPUs the pod is given, then start Triton.

The model configs in the image carry instance counts for one pod size. Run as the container's
command in front of tritonserver, this reads the pod's CPU limit (the cgroup CFS quota, else
the CPUs the process may run on), writes a copy of the model repository to a writable folder
(symbolic links to every file except the configs it rewrites) with instance counts and thread
settings for that many CPUs, and replaces itself with tritonserver on the copy (same PID, so
signals and the preStop drain reach Triton as before). Repositories that are not local folders
(s3://, gs://, as://) are passed through unchanged.

    triton-fit-instances [--cpus N] [--out DIR] -- tritonserver --model-repository=/models ...

What is rewritten, per model (the reasoning and the figures are in docs/benchmarks.md):
- `minilm` where it runs on the CPU (its instance groups without `kind: KIND_GPU`): one
  single-threaded ONNX Runtime session per CPU on pods under 4 CPUs, two-threaded sessions
  (CPUs / 2 of them) from 4 CPUs on. A GPU config (KIND_GPU) is left as it is.
- `tokenizer`: one instance per 8 CPUs on a CPU-only pod, where the encoder needs the cores;
  one per 2 CPUs where the encoder runs on a GPU (the `gpu` model config), where tokenizing and
  serving are the CPU's whole job. Every instance runs `encode_batch` on one thread; instances,
  not threads, add parallelism, because each instance's Python work is serial too. Where the
  encoder runs on a GPU, the tokenizer's `max_request_tokens` is lifted to what its other
  limits allow (max_batch_size texts of max_tokens): that budget is sized for the encoder's
  cost on a CPU, where one request's execution holds a core for a large part of a second.

Standard library only, like triton-drain and triton-probe: the serving image has no protobuf
for Python, so the configs are edited as text, in the form this repository writes them, and a
config in any other form makes this exit with an error rather than start a misfitted server.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_OUT = Path("/tmp/model-repository")
CGROUP_ROOT = Path("/sys/fs/cgroup")
REMOTE_PREFIXES = ("s3://", "gs://", "as://")
REPOSITORY_FLAG = "--model-repository="
CONFIG_NAME_FLAG = "--model-config-name="
# One `instance_group [ { ... count: N ... } ]` line, as this repository writes them.
_INSTANCE_GROUP = re.compile(r"^instance_group \[ \{ (?P<body>[^{}]*) \} \]$", re.MULTILINE)
_COUNT = re.compile(r"count: \d+")
_MAX_BATCH_SIZE = re.compile(r"^max_batch_size: (?P<size>\d+)$", re.MULTILINE)
REQUEST_TOKENS_KEY = "max_request_tokens"
MAX_TOKENS_KEY = "max_tokens"


class FitError(RuntimeError):
    pass


@dataclass(frozen=True)
class Fit:
    count: int
    threads: int
    thread_parameter: str  # the config parameter that sets the threads of one instance


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs allowed by the CFS quota (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us`), or None."""
    v2 = root / "cpu.max"
    try:
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        for v1 in (root / "cpu", root / "cpu,cpuacct"):
            quota_file = v1 / "cpu.cfs_quota_us"
            if quota_file.is_file():
                quota_us = int(quota_file.read_text())
                period_us = int((v1 / "cpu.cfs_period_us").read_text())
                return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None
    return None


def available_cpus(root: Path = CGROUP_ROOT) -> float:
    """The CPUs this process can use: its affinity set, capped by the cgroup's CPU limit."""
    cpus: float = len(os.sched_getaffinity(0))
    limit = cgroup_cpu_limit(root)
    return cpus if limit is None else min(cpus, limit)


def whole_cpus(cpus: float) -> int:
    """A fractional limit rounded up (1.5 CPUs can keep two threads busy part of the time)."""
    return max(1, math.ceil(cpus - 1e-9))


def plan(cpus: int, encoder_on_gpu: bool) -> dict[str, Fit]:
    """Instances and threads per model for a pod with `cpus` whole CPUs."""
    fits = {}
    if not encoder_on_gpu:
        threads = 1 if cpus < 4 else 2
        fits["minilm"] = Fit(max(1, cpus // threads), threads, "intra_op_thread_count")
    per_tokenizer = 2 if encoder_on_gpu else 8
    fits["tokenizer"] = Fit(max(1, cpus // per_tokenizer), 1, "tokenizer_threads")
    return fits


def _rewrite_groups(text: str, count: int, source: Path) -> str:
    groups = _INSTANCE_GROUP.findall(text)
    if len(groups) != 1:
        raise FitError(f"{source}: expected one `instance_group [ {{ ... }} ]` line")
    if "KIND_GPU" in groups[0]:
        return text
    return _INSTANCE_GROUP.sub(
        lambda m: f"instance_group [ {{ {_COUNT.sub(f'count: {count}', m['body'])} }} ]", text
    )


def _parameter_line(key: str) -> re.Pattern[str]:
    return re.compile(
        r'(parameters \{ key: "' + re.escape(key) + r'", value: \{ string_value: ")([^"]*)(" \} \})'
    )


def _rewrite_parameter(text: str, key: str, value: int, source: Path) -> str:
    pattern = _parameter_line(key)
    if not pattern.search(text):
        raise FitError(f'{source}: expected a `parameters {{ key: "{key}" ... }}` line')
    return pattern.sub(lambda m: f"{m[1]}{value}{m[3]}", text)


def lift_request_tokens(text: str, source: Path) -> str:
    """A tokenizer config's `text` with `max_request_tokens` raised to max_batch_size x
    max_tokens, the most its other limits let through (a config without the key is left as it
    is). The budget bounds the encoder's cost on a CPU; where the encoder costs far less per
    token (a GPU, or the serving-path benchmark's lookup graph) it would only refuse work."""
    if not _parameter_line(REQUEST_TOKENS_KEY).search(text):
        return text
    batch = _MAX_BATCH_SIZE.search(text)
    max_tokens = _parameter_line(MAX_TOKENS_KEY).search(text)
    if batch is None or max_tokens is None:
        raise FitError(
            f"{source}: expected a `max_batch_size: N` line and a `{MAX_TOKENS_KEY}` parameter "
            f"beside `{REQUEST_TOKENS_KEY}`"
        )
    lifted = int(batch["size"]) * int(max_tokens[2])
    return _rewrite_parameter(text, REQUEST_TOKENS_KEY, lifted, source)


def fitted_config(text: str, fit: Fit, source: Path) -> str:
    """`text` with the instance count and the threads of `fit` (a GPU group is left alone)."""
    rewritten = _rewrite_groups(text, fit.count, source)
    if rewritten == text and "KIND_GPU" in text:
        return text  # the model runs on the GPU: its CPU thread setting does not apply
    return _rewrite_parameter(rewritten, fit.thread_parameter, fit.threads, source)


def _config_path(model_dir: Path, config_name: str | None) -> Path:
    if config_name:
        named = model_dir / "configs" / f"{config_name}.pbtxt"
        if named.is_file():
            return named
    return model_dir / "config.pbtxt"


def _encoder_on_gpu(repository: Path, config_name: str | None) -> bool:
    encoder = repository / "minilm"
    return encoder.is_dir() and "KIND_GPU" in _config_path(encoder, config_name).read_text()


def write_fitted_repository(
    source: Path, destination: Path, cpus: int, config_name: str | None = None
) -> dict[str, Fit]:
    """Link `source` into `destination` file by file, with the planned configs as real files."""
    on_gpu = _encoder_on_gpu(source, config_name)
    fits = plan(cpus, on_gpu)
    rewrites: dict[Path, str] = {}
    for model, fit in fits.items():
        if not (source / model).is_dir():
            continue
        path = _config_path(source / model, config_name)
        text = fitted_config(path.read_text(), fit, path)
        if on_gpu and model == "tokenizer":
            text = lift_request_tokens(text, path)
        rewrites[path] = text
    for directory, _, files in os.walk(source, followlinks=True):
        relative = Path(directory).relative_to(source)
        (destination / relative).mkdir(parents=True, exist_ok=True)
        for name in files:
            original = Path(directory) / name
            target = destination / relative / name
            target.unlink(missing_ok=True)
            if original in rewrites:
                target.write_text(rewrites[original])
            else:
                target.symlink_to(original.resolve())
    return fits


def _flag_value(command: Sequence[str], flag: str) -> str | None:
    return next((arg[len(flag) :] for arg in command if arg.startswith(flag)), None)


def fitted_command(
    command: Sequence[str], cpus: int, out: Path, report: Callable[[str], None] = print
) -> list[str]:
    """The tritonserver command, pointed at a fitted copy of its local model repository."""
    repository = _flag_value(command, REPOSITORY_FLAG)
    if repository is None:
        raise FitError(f"the server command has no {REPOSITORY_FLAG}DIR: {list(command)}")
    if repository.startswith(REMOTE_PREFIXES):
        report(f"triton-fit-instances: {repository} is not local; instance counts unchanged")
        return list(command)
    fits = write_fitted_repository(
        Path(repository), out, cpus, _flag_value(command, CONFIG_NAME_FLAG)
    )
    summary = ", ".join(f"{m} {f.count}x{f.threads}" for m, f in fits.items())
    report(f"triton-fit-instances: {cpus} CPUs: {summary} (instances x threads), in {out}")
    return [
        f"{REPOSITORY_FLAG}{out}" if arg.startswith(REPOSITORY_FLAG) else arg for arg in command
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Fit CPU-side instance counts to the pod's CPU limit, then exec tritonserver.",
        usage="%(prog)s [--cpus N] [--out DIR] -- tritonserver --model-repository=DIR [...]",
    )
    parser.add_argument(
        "--cpus", type=float, help="CPUs to plan for (default: the cgroup limit, else affinity)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="(default: %(default)s)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the server command after --")
    cpus = whole_cpus(args.cpus if args.cpus else available_cpus())
    try:
        command = fitted_command(command, cpus, args.out, lambda line: print(line, flush=True))
    except (FitError, OSError) as error:
        print(f"triton-fit-instances: {error}", file=sys.stderr)
        return 2
    os.execvp(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
