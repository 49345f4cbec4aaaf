"""Every `inference-tools` command, and every command of the lab (`python -m lab`), explains itself,
checked by walking the real argparse tree.

Each parser, groups included, has a description; each option and positional has help, and the
help shows its default where it has one; each command (a parser without subcommands) ends its
help with example command lines, and every example parses with the real parser into that very
command. The installed entry point (and `python -m lab` in the checkout) answers `--help` for
every command, and the global options work before and after the command.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from inference_tools.cli import build_parser
from inference_tools.command_parser import (
    EXAMPLE_HEADINGS,
    CommandParser,
    HelpFormatter,
    default_text,
    shows_default,
)
from lab import cli as lab_cli

from tests.checkout import CHECKOUT

ENTRY_POINT = Path(sys.executable).parent / "inference-tools"
PROG = "inference-tools"
# Each command-line tree: how to build its parser, and how a user starts it.
TREES = {
    PROG: (build_parser, [str(ENTRY_POINT)]),
    lab_cli.PROG: (lab_cli.build_parser, [sys.executable, "-m", "lab"]),
}


def command_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(command words, parser) of the parser and of every parser below it, depth first."""
    yield path, parser
    subparsers = subcommands(parser)
    if subparsers is not None:
        for name, child in subparsers.choices.items():
            yield from command_parsers(child, (*path, name))


def subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def examples(parser: argparse.ArgumentParser) -> list[list[str]]:
    """The command lines under the epilog's `Example:`/`Examples:` heading, as argv lists.

    A line ending in a backslash continues on the next; `# ...` is a comment, and a shell
    operator (`>`, `|`, `&&`, ...) ends the command.
    """
    lines = (parser.epilog or "").splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() in EXAMPLE_HEADINGS]
    if not starts:
        return []
    commands: list[list[str]] = []
    pending = ""
    for line in lines[starts[-1] + 1 :]:
        pending += line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending:
            commands.append(command_words(pending))
        pending = ""
    return commands


def command_words(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = []
    for word in lexer:
        if set(word) <= set(lexer.punctuation_chars):
            break
        words.append(word)
    return words


def parse_problem(root: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """Why `root` refuses argv (argparse's own message), or None when it parses."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            root.parse_args(argv)
    except SystemExit:
        return stderr.getvalue().strip().splitlines()[-1]
    return None


def help_problems(root: argparse.ArgumentParser) -> list[str]:
    """Every way in which a parser of the tree under `root` fails to explain itself."""
    problems: list[str] = []
    prog = root.prog.split()
    for path, parser in command_parsers(root):
        name = " ".join((*prog, *path))
        if parser.formatter_class is not HelpFormatter:
            problems.append(f"{name}: formatter {parser.formatter_class.__name__}, not ours")
        if not (parser.description or "").strip():
            problems.append(f"{name}: no description")
        formatter = parser._get_formatter()
        for action in parser._actions:
            label = "/".join(action.option_strings) or action.metavar or action.dest
            if isinstance(action, argparse._SubParsersAction):
                listed = {choice.dest: choice.help for choice in action._choices_actions}
                for command in action.choices:
                    if not listed.get(command):
                        problems.append(f"{name} {command}: no line in the command list")
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                problems.append(f"{name} {label}: no help")
            elif shows_default(action.default):
                shown = f"default: {default_text(action.default)}"
                if shown not in formatter._expand_help(action):
                    problems.append(f"{name} {label}: help does not show `{shown}`")
                elif "default:" in action.help and "%(default)" not in action.help:
                    # A value written by hand goes stale; the formatter states the real one.
                    problems.append(f"{name} {label}: help writes its default by hand")
        if subcommands(parser) is not None:
            continue
        command_lines = examples(parser)
        if not command_lines:
            problems.append(f"{name}: no example in the epilog")
        for argv in command_lines:
            example = shlex.join(argv)
            if argv[: len(prog)] != prog:
                problems.append(f"{name}: example `{example}` does not run {root.prog}")
                continue
            refused = parse_problem(root, argv[len(prog) :])
            if refused:
                problems.append(f"{name}: example `{example}` does not parse: {refused}")
            elif root.parse_args(argv[len(prog) :]).func is not parser.get_default("func"):
                problems.append(f"{name}: example `{example}` runs another command")
    return problems


def command_paths(prog: str = PROG) -> list[tuple[str, ...]]:
    return [path for path, _ in command_parsers(TREES[prog][0]())]


def leaf_examples() -> list[tuple[str, tuple[str, ...], list[str]]]:
    """(program, command words, argv of its first example) of every command of both trees; the
    bare command words where it has none (which the walk reports)."""
    leaves = []
    for prog, (build, _) in TREES.items():
        words = prog.split()
        for path, parser in command_parsers(build()):
            if subcommands(parser) is None:
                first = next(iter(examples(parser)), [*words, *path])
                leaves.append((prog, path, first[len(words) :]))
    return leaves


@pytest.mark.parametrize("prog", sorted(TREES))
def test_every_parser_explains_itself(prog: str) -> None:
    assert help_problems(TREES[prog][0]()) == []


def test_the_walk_reaches_every_command() -> None:
    # Groups and the commands inside them: a new command joins this list.
    assert {" ".join(path) for path in command_paths()} == {
        "",
        "serve",
        "build-models",
        "validate-manifests",
        "release-overlay",
        "models",
        "publish",
        "rollback",
        "perf",
        "perf measure",
        "perf dataset",
        "autoscaling",
        "autoscaling calibrate",
        "autoscaling adapter-values",
        "drain",
        "probe",
    }
    # The lab's: run from the checkout, never installed with the tooling.
    assert {" ".join(path) for path in command_paths(lab_cli.PROG)} == {
        "",
        "perf",
        "perf run",
        "perf tune",
        "perf profile",
        "perf report",
        "autoscaling",
        "autoscaling simulate",
        "autoscaling cluster-step",
        "reliability",
    }


def test_the_walker_reports_a_broken_parser() -> None:
    root = CommandParser(prog=PROG, description="a tree with faults", top_level=True)
    commands = root.add_subparsers(dest="command", required=True)
    group = commands.add_parser("group", description="a group with one broken command")
    actions = group.add_subparsers(dest="action", required=True)
    broken = actions.add_parser(
        "broken",
        help="one line",
        epilog="Examples:\n  inference-tools group broken --speed 3\n"
        "  inference-tools group broken --removed-flag\n  inference-tools group fine",
    )
    broken.add_argument("--speed", type=int)
    broken.add_argument("--limit", type=int, default=7, help="the limit (default: 8)")
    broken.set_defaults(func=lambda args: 0)
    fine = actions.add_parser(
        "fine",
        help="one line",
        description="the other command",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fine.add_argument("--depth", type=int, default=2, help="how deep")
    fine.set_defaults(func=lambda args: 1)

    assert help_problems(root) == [
        "inference-tools group: no line in the command list",
        "inference-tools group broken: no description",
        "inference-tools group broken --speed: no help",
        "inference-tools group broken --limit: help writes its default by hand",
        "inference-tools group broken: example `inference-tools group broken --removed-flag` "
        "does not parse: inference-tools: error: unrecognized arguments: "
        "--removed-flag",
        "inference-tools group broken: example `inference-tools group fine` runs another command",
        "inference-tools group fine: formatter RawDescriptionHelpFormatter, not ours",
        "inference-tools group fine --depth: help does not show `default: 2`",
        "inference-tools group fine: no example in the epilog",
    ]


def test_help_states_defaults_as_the_option_takes_them() -> None:
    parser = CommandParser(prog=PROG, description="defaults")
    parser.add_argument("--levels", type=str, default=(1, 2, 4), help="load levels")
    parser.add_argument("--rate", type=float, default=0.5, help="fraction of 100%% capacity")
    parser.add_argument("--share", default="5%", help="share of the fleet")
    parser.add_argument("--retries", type=int, default=0, help="retries")
    parser.add_argument("--name", help="name (default: the folder's)")
    parser.add_argument("--quiet", action="store_true", help="say less")
    text = " ".join(parser.format_help().split())
    assert "load levels (default: 1,2,4)" in text
    assert "fraction of 100% capacity (default: 0.5)" in text
    assert "share of the fleet (default: 5%)" in text
    assert "retries (default: 0)" in text
    assert "name (default: the folder's)" in text and "(default: None)" not in text
    assert "say less" in text and "(default: False)" not in text


@pytest.mark.parametrize(
    ("prog", "path", "argv"),
    leaf_examples(),
    ids=[" ".join((prog, *path)) for prog, path, _ in leaf_examples()],
)
def test_verbose_before_and_after_the_command(
    prog: str, path: tuple[str, ...], argv: list[str]
) -> None:
    parser = TREES[prog][0]()
    assert tuple(argv[: len(path)]) == path
    assert parser.parse_args(argv).verbose is False
    # Before the first command word, after each one, and last.
    for position in [*range(len(path) + 1), len(argv)]:
        with_verbose = [*argv[:position], "-v", *argv[position:]]
        assert parser.parse_args(with_verbose).verbose is True, with_verbose


@pytest.mark.parametrize("prog", sorted(TREES))
def test_every_command_help_through_the_installed_entry_point(prog: str) -> None:
    # Side by side: each is a fresh interpreter importing the whole tool. The lab runs from the
    # checkout's root, as the Makefile runs it.
    runs = {
        path: subprocess.Popen(
            [*TREES[prog][1], *path, "--help"],
            cwd=CHECKOUT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in command_paths(prog)
    }
    for path, process in runs.items():
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, (path, stderr)
        assert stdout.startswith(f"usage: {' '.join((prog, *path))}"), (path, stdout[:200])
