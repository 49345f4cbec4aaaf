"""The Makefile runs each unit where it lives: the lab's targets run `python -m lab` from the
checkout (the lab is not in the wheel), the operator's targets the installed `inference-tools`;
every command line they run parses with its own parser into the command the target is for."""

from __future__ import annotations

import argparse
import shlex
import shutil
from collections.abc import Callable

import pytest
from inference_tools.cli import build_parser
from lab import cli as lab_cli

from tests.makefile import run_make

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")

LAB_TARGETS = {
    "perf": ("perf", "run"),
    "perf-tune": ("perf", "tune"),
    "simulate": ("autoscaling", "simulate"),
    "autoscale-demo": ("autoscaling", "cluster-step"),
    "reliability": ("reliability",),
}
TOOLING_TARGETS = {
    "serve": ("serve",),
    "calibrate": ("autoscaling", "calibrate"),
    "validate": ("validate-manifests",),
}


def command_of(target: str, program: tuple[str, ...]) -> list[str]:
    """The one command line `make -n TARGET` runs with `program`, as words after it."""
    result = run_make("-n", target)
    assert result.returncode == 0, result.stderr
    # Only the lines that can hold the program: a prerequisite's shell (multi-line `if`s) need
    # not split into words on its own.
    lines = [shlex.split(line) for line in result.stdout.splitlines() if " ".join(program) in line]
    runs = [
        words
        for words in lines
        if any(tuple(words[i : i + len(program)]) == program for i in range(len(words)))
    ]
    assert len(runs) == 1, result.stdout
    words = runs[0]
    start = next(i for i in range(len(words)) if tuple(words[i : i + len(program)]) == program)
    return words[start + len(program) :]


def parses_into(
    parser: Callable[[], argparse.ArgumentParser], argv: list[str], command: tuple[str, ...]
) -> bool:
    args = parser().parse_args(argv)
    leaf = parser()
    for word in command:
        leaf = next(
            action.choices[word]
            for action in leaf._actions
            if isinstance(action, argparse._SubParsersAction)
        )
    return args.func is leaf.get_default("func")


@pytest.mark.parametrize("target", sorted(LAB_TARGETS))
def test_the_lab_targets_run_the_lab_from_the_checkout(target: str) -> None:
    argv = command_of(target, ("-m", "lab"))
    assert tuple(argv[: len(LAB_TARGETS[target])]) == LAB_TARGETS[target]
    assert parses_into(lab_cli.build_parser, argv, LAB_TARGETS[target])


@pytest.mark.parametrize("target", sorted(TOOLING_TARGETS))
def test_the_operator_targets_run_the_installed_tooling(target: str) -> None:
    result = run_make("-n", target)
    assert "-m lab" not in result.stdout
    argv = next(
        shlex.split(line)[1:]
        for line in result.stdout.splitlines()
        if line.split(" ")[0].endswith("/inference-tools")
        and line.split(" ")[1:2] == [TOOLING_TARGETS[target][0]]
    )
    assert parses_into(build_parser, argv, TOOLING_TARGETS[target])
