"""Static checks of the commands and manifests the docs show: what a new user would paste.

Shell blocks are split into commands; each program has a rule:
- `make TARGET VAR=...`: the target exists, every variable reaches what the target runs (a dry
  run with a sentinel value shows it), and the `inference-tools` and `python -m lab` lines it
  runs parse;
- `inference-tools ...`: the arguments parse with the real parser; `--help` is run;
- `python -m lab ...` (the lab's commands, from the checkout's root): the same, with the lab's;
- `kubectl kustomize DIR`, `kubectl apply -k DIR`: DIR renders; other kubectl commands: every
  flag exists in that command's own `--help`;
- `kustomize edit set image NAME=...`: NAME is an image of that kustomization;
- `pytest PATHS -m EXPR`: the paths exist and the markers are registered;
- `cd`, `mkdir`, `source`; programs of a cluster or a registry (`docker`, `kind`, `helm`, ...)
  are not run here: their arguments are still checked for files of this checkout.
A program without a rule is a problem: a new kind of command needs a rule before it is shown.

YAML blocks are Kubernetes objects (strict schema validation; the shell scripts of their
containers are checked as above) or kustomizations (rendered, with this repository's remote URL
read from the checkout, and `images:` names that must exist in what they patch).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import io
import itertools
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from inference_tools.cli import build_parser
from inference_tools.manifests.render import Render, kubectl, render
from inference_tools.manifests.validation import validate_core
from lab import cli as lab_cli

from tests.checkout import CHECKOUT
from tests.docs.markdown_blocks import DocBlock
from tests.makefile import makefile_targets, run_make

# `<folder | file.onnx>`: a value the reader fills in.
_PLACEHOLDER = re.compile(r"<[A-Za-z][^<>\n]*>")
_OPERATORS = {"|", "||", "&&", ";", "&"}
# `> file`, `2>/dev/null`, `2>&1`, `&> log`: where output goes, not arguments.
_REDIRECTION = re.compile(r"(?<=\s)(\d|&)?(>>?|<)\s*(&\d|[^\s|&;]+)")
# This repository as a remote kustomize base: read from the checkout instead.
_REMOTE_BASE = re.compile(r"^https://github\.com/[^/]+/scalable-inference-server//(?P<path>[^?]+)")
# Where tools of a cluster, a registry or a workstation run; never here.
EXTERNAL_PROGRAMS = {
    "cat",
    "curl",
    "docker",
    "git",
    "grep",
    "helm",
    "kind",
    "minikube",
    "openssl",
    "base64",
    "pip",
    "sed",
    "set",
    "tar",
}
_MAKE_FAILED = "the dry run `make -n` exits"
# Made by `make setup` or by the commands themselves, never committed.
_GENERATED_PREFIXES = (".venv/", ".work/", ".tools/", "perf/results/")


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell snippet, placeholders and optional `[...]` brackets read as
    values, comments dropped, pipelines and lists split."""
    commands: list[list[str]] = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(
            _REDIRECTION.sub("", _PLACEHOLDER.sub("PLACEHOLDER", line)),
            posix=True,
            punctuation_chars="|&;",
        )
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        for token in lexer:
            if token in _OPERATORS:
                commands.append(current)
                current = []
            else:
                current.append(token.removeprefix("[").removesuffix("]"))
        commands.append(current)
    return [command for command in commands if command]


def _without_assignments(argv: list[str]) -> list[str]:
    while argv and re.match(r"^[A-Za-z_]\w*=", argv[0]):
        argv = argv[1:]
    return argv


@dataclass
class DocChecker:
    """Checks blocks page by page: a YAML block that names its file (`# team-a/kustomization.yaml`
    on its first line) is written under `work_dir`, where later blocks of the page find it."""

    checkout: Path
    work_dir: Path
    page_files: dict[str, Path] = field(default_factory=dict)
    _renders: dict[Path, Render] = field(default_factory=dict)
    _kubectl_help: dict[tuple[str, ...], str] = field(default_factory=dict)

    @functools.cached_property
    def _top_level(self) -> set[str]:
        return {p.name for p in self.checkout.iterdir() if not p.name.startswith(".")}

    @functools.cached_property
    def _kubectl_global_options(self) -> str:
        return subprocess.run(
            [kubectl(), "options"], capture_output=True, text=True, check=False
        ).stdout

    # --- blocks -----------------------------------------------------------------------------

    def check(self, block: DocBlock) -> list[str]:
        if block.kind is None:
            return [
                "not marked: put `<!-- doc-check: run|validate|text -->` on the line before "
                "the fence (tests/docs/markdown_blocks.py says what each means)"
            ]
        if block.kind == "text":
            if block.language in {"bash", "sh", "shell", "python", "yaml"}:
                return [f"a {block.language} block marked text: mark it run or validate"]
            return []
        if block.language in {"bash", "sh", "shell"}:
            return self.check_shell(block.text)
        if block.language == "yaml":
            return self.check_yaml(block)
        if block.language == "python":
            return self.check_python(block.text)
        return [f"no check for {block.language or 'plain'} blocks: mark it text"]

    def check_python(self, code: str) -> list[str]:
        try:
            compile(code, "<doc>", "exec")
        except SyntaxError as error:
            return [f"Python does not compile: {error}"]
        return []

    # --- shell ------------------------------------------------------------------------------

    def check_shell(self, script: str, cwd: Path | None = None) -> list[str]:
        cwd = cwd or self.checkout
        problems: list[str] = []
        for argv in map(_without_assignments, shell_commands(script)):
            if not argv:
                continue
            program = Path(argv[0]).name
            where = f"`{shlex.join(argv)}`"
            problems += [f"{where}: {p}" for p in self._files_named(argv, cwd)]
            if program == "cd":
                cwd = (cwd / argv[1]).resolve()
                continue
            rule = getattr(self, f"_check_{program.replace('-', '_')}", None)
            if rule is not None:
                problems += [f"{where}: {p}" for p in rule(argv, cwd)]
            elif program not in EXTERNAL_PROGRAMS:
                problems.append(f"{where}: no rule checks `{program}` (tests/docs/doc_checks.py)")
        return problems

    def _files_named(self, argv: list[str], cwd: Path) -> Iterator[str]:
        """Arguments that name a file of this checkout must exist."""
        for argument in argv[1:]:
            value = argument.split("=", 1)[1] if re.match(r"^-*[\w-]+=", argument) else argument
            for word in value.split():
                path = word.split("::")[0]
                if path.startswith(_GENERATED_PREFIXES) or "$" in path or "://" in path:
                    continue
                names_a_file = path in self._top_level or (
                    "/" in path and path.split("/")[0] in self._top_level
                )
                if names_a_file and not (cwd / path).exists():
                    yield f"{path} does not exist"

    def _check_mkdir(self, argv: list[str], cwd: Path) -> list[str]:
        return []

    def _check_source(self, argv: list[str], cwd: Path) -> list[str]:
        return [] if argv[1].startswith(".venv/") else [f"sources {argv[1]}, not the venv"]

    def _check_make(self, argv: list[str], cwd: Path) -> list[str]:
        targets = [a for a in argv[1:] if "=" not in a and not a.startswith("-")]
        variables = dict(a.split("=", 1) for a in argv[1:] if "=" in a)
        known = makefile_targets(self.checkout / "Makefile")
        problems = [f"no target {t} in the Makefile" for t in targets if t not in known]
        if problems:
            return problems
        # A variable the target never reads is a documented option that does nothing.
        sentinels = {name: f"__doc_check_{name}__" for name in variables}
        dry_run = self._make_dry_run(targets, sentinels, cwd)
        problems += [
            f"{name}= does not reach what `make {' '.join(targets)}` runs"
            for name, sentinel in sentinels.items()
            if sentinel not in dry_run
        ]
        # Placeholders (`<folder>`, `...`) read as a value any option takes.
        values = {k: "1" if v in {"PLACEHOLDER", "..."} else v for k, v in variables.items()}
        dry_run = self._make_dry_run(targets, values, cwd)
        if dry_run.startswith(_MAKE_FAILED):
            return [*problems, dry_run]
        for command in shell_commands(dry_run):
            if Path(command[0]).name == "inference-tools" and "--help" not in command:
                problems += [f"runs `{shlex.join(command)}`: {p}" for p in parse_cli(command[1:])]
            elif _runs_the_lab(command) and "--help" not in command:
                problems += [
                    f"runs `{shlex.join(command)}`: {p}"
                    for p in parse_cli(command[3:], lab_cli.build_parser)
                ]
        return problems

    def _make_dry_run(self, targets: list[str], variables: dict[str, str], cwd: Path) -> str:
        result = run_make("-n", *targets, *(f"{k}={v}" for k, v in variables.items()), cwd=cwd)
        if result.returncode != 0:
            return f"{_MAKE_FAILED} {result.returncode}: {result.stderr.strip()}"
        return result.stdout

    def _check_inference_tools(self, argv: list[str], cwd: Path) -> list[str]:
        if "--help" in argv or "-h" in argv:
            result = subprocess.run(
                [str(Path(sys.prefix) / "bin" / "inference-tools"), *argv[1:]],
                cwd=cwd,
                capture_output=True,
                text=True,
                check=False,
            )
            return [] if result.returncode == 0 else [f"exit {result.returncode}: {result.stderr}"]
        return parse_cli(argv[1:])

    def _check_python(self, argv: list[str], cwd: Path) -> list[str]:
        """`python -m lab ...`, the lab's commands, run from the checkout's root."""
        if not _runs_the_lab(argv):
            return [f"no rule checks `{shlex.join(argv[:3])}` (tests/docs/doc_checks.py)"]
        if "--help" in argv or "-h" in argv:
            result = subprocess.run(
                [sys.executable, "-m", "lab", *argv[3:]],
                cwd=self.checkout,
                capture_output=True,
                text=True,
                check=False,
            )
            return [] if result.returncode == 0 else [f"exit {result.returncode}: {result.stderr}"]
        return parse_cli(argv[3:], lab_cli.build_parser)

    def _check_pytest(self, argv: list[str], cwd: Path) -> list[str]:
        markers = registered_markers()
        problems = []
        for option, value in itertools.pairwise(argv):
            if option == "-m":
                words = set(re.findall(r"\w+", value)) - {"and", "or", "not"}
                problems += [f"marker {w} is not registered" for w in sorted(words - markers)]
        return problems

    def _check_kubectl(self, argv: list[str], cwd: Path) -> list[str]:
        words, flags = _kubectl_words_and_flags(argv[1:])
        if words[:1] == ["kustomize"]:
            return self._renders_ok(cwd, words[1])
        if words[:1] == ["apply"]:
            for flag, value in itertools.pairwise(argv):
                if flag == "-k":
                    return self._renders_ok(cwd, value)
        help_text = self._kubectl_command_help(tuple(words))
        return [
            f"kubectl {' '.join(words)} has no {flag}" for flag in flags if flag not in help_text
        ]

    def _check_kustomize(self, argv: list[str], cwd: Path) -> list[str]:
        if argv[1:4] != ["edit", "set", "image"]:
            return [f"no check for kustomize {argv[1]}: show it with kubectl"]
        images = self._images_in(self.render_dir(cwd))
        names = [a.split("=", 1)[0] for a in argv[4:]]
        return [
            f"{name} is not an image of {cwd.name} ({', '.join(sorted(images))})"
            for name in names
            if name not in images
        ]

    # --- kubectl and kustomize ----------------------------------------------------------------

    def _kubectl_command_help(self, words: tuple[str, ...]) -> str:
        if words not in self._kubectl_help:
            command = subprocess.run(
                [kubectl(), *words, "--help"], capture_output=True, text=True, check=False
            )
            self._kubectl_help[words] = command.stdout + self._kubectl_global_options
        return self._kubectl_help[words]

    def _renders_ok(self, cwd: Path, path: str) -> list[str]:
        try:
            self.render_dir(self._resolve(cwd, path))
        except (RuntimeError, FileNotFoundError) as error:
            return [str(error)]
        return []

    def _resolve(self, cwd: Path, path: str) -> Path:
        return self.page_files.get(path.rstrip("/"), cwd / path)

    def render_dir(self, directory: Path) -> Render:
        directory = directory.resolve()
        if not (directory / "kustomization.yaml").is_file():
            raise FileNotFoundError(f"{directory} has no kustomization.yaml")
        if directory not in self._renders:
            self._renders[directory] = render(directory)
        return self._renders[directory]

    @staticmethod
    def _images_in(rendered: Render) -> set[str]:
        """The image names (no tag, no digest) of every container of the render."""
        images = set()
        for resource in rendered.resources:
            pod = resource.get("spec", {}).get("template", {}).get("spec", {})
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                images.add(image_name(container["image"]))
        return images

    # --- YAML -------------------------------------------------------------------------------

    def check_yaml(self, block: DocBlock) -> list[str]:
        try:
            documents = [d for d in yaml.safe_load_all(block.text) if d is not None]
        except yaml.YAMLError as error:
            return [f"not YAML: {error}"]
        if "merge-into" in block.options:
            shown = self.page_files.get(block.options["merge-into"])
            if shown is None:
                return [f"merge-into={block.options['merge-into']}: no earlier block shows it"]
            base = yaml.safe_load((shown / "kustomization.yaml").read_text())
            merged = _merged(base, documents[0])
            return self._check_kustomization(merged, _dir_name(block) + "-merged", None)
        if "extends" in block.options:
            extended = self.checkout / block.options["extends"]
            kustomization = {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
            }
            base = self.checkout / "kustomize" / "base"
            if yaml.safe_load((extended / "kustomization.yaml").read_text())["kind"] == "Component":
                kustomization |= {"resources": [str(base)], "components": [str(extended)]}
            else:
                kustomization |= {"resources": [str(extended)]}
            # As the overlays do: generators merge only with objects of the same namespace.
            kustomization["namespace"] = yaml.safe_load((base / "kustomization.yaml").read_text())[
                "namespace"
            ]
            merged = _merged(kustomization, documents[0])
            return self._check_kustomization(merged, _dir_name(block) + "-extends", None)
        problems = []
        for document in documents:
            if not isinstance(document, dict) or "kind" not in document:
                problems.append(
                    "a YAML fragment: say what it extends (merge-into=DIR shown earlier in the "
                    "page, or extends=DIR of the checkout)"
                )
            elif document["kind"] == "Kustomization":
                problems += self._check_kustomization(
                    document, _dir_name(block), block.first_line_comment
                )
            else:
                problems += self._check_object(document, block.name)
        return problems

    def _check_kustomization(
        self, document: dict[str, Any], name: str, shown_as: str | None
    ) -> list[str]:
        directory = self.work_dir / (Path(shown_as).parent.name if shown_as else name)
        directory.mkdir(parents=True, exist_ok=True)
        local = copy.deepcopy(document)
        for key in ("resources", "components"):
            local[key] = [self._local_reference(entry, directory) for entry in local.get(key, [])]
        problems = []
        # kustomize ignores an `images:` entry that matches nothing; the reader would not know.
        without_images = {k: v for k, v in local.items() if k != "images"}
        (directory / "kustomization.yaml").write_text(yaml.safe_dump(without_images))
        try:
            images = self._images_in(render(directory))
            known = ", ".join(sorted(images))
            problems += [
                f"images: {entry['name']} is no image of what it patches ({known})"
                for entry in local.get("images", [])
                if entry["name"] not in images
            ]
            (directory / "kustomization.yaml").write_text(yaml.safe_dump(local))
            problems += _merges_lost(local, render(directory))
        except RuntimeError as error:
            problems.append(str(error))
        if shown_as:
            self.page_files[Path(shown_as).parent.as_posix()] = directory
        return problems

    def _local_reference(self, entry: str, directory: Path) -> str:
        """This repository's remote URL, or an absolute path, as kustomize wants it: relative."""
        match = _REMOTE_BASE.match(entry)
        if match:
            return os.path.relpath(self.checkout / match.group("path"), directory)
        return os.path.relpath(entry, directory) if Path(entry).is_absolute() else entry

    def _check_object(self, document: dict[str, Any], name: str) -> list[str]:
        problems = validate_core(Render(name, self.checkout, [document]))
        pod = document.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            command = container.get("command", []) + container.get("args", [])
            if command[:2] in (["bash", "-c"], ["sh", "-c"]) and len(command) > 2:
                problems += [
                    f"container {container['name']}: {p}" for p in self.check_shell(command[2])
                ]
            elif command and Path(command[0]).name == "inference-tools":
                problems += [f"container {container['name']}: {p}" for p in parse_cli(command[1:])]
        return problems


def _kubectl_words_and_flags(arguments: list[str]) -> tuple[list[str], list[str]]:
    """kubectl's subcommand words (and its first operand) and the flags given, without values."""
    words, flags = [], []
    skip = False
    for argument in arguments:
        if skip:
            skip = False
        elif argument.startswith("-"):
            name = argument.split("=", 1)[0]
            flags.append(name)
            # Short flags and the global namespace flag take the next word as their value.
            skip = "=" not in argument and (len(name) == 2 or name == "--namespace")
        else:
            words.append(argument)
    return words, flags


def _dir_name(block: DocBlock) -> str:
    return re.sub(r"[/:]", "-", block.name)


def _merged(base: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in fragment.items():
        merged[key] = merged.get(key, []) + value if isinstance(value, list) else value
    return merged


def image_name(reference: str) -> str:
    name = reference.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def _runs_the_lab(argv: list[str]) -> bool:
    return Path(argv[0]).name.startswith("python") and argv[1:3] == ["-m", "lab"]


def parse_cli(
    arguments: list[str], parser: Callable[[], argparse.ArgumentParser] = build_parser
) -> list[str]:
    """Problems the real parser finds in `inference-tools ARGUMENTS` (or the lab's command's)."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            parser().parse_args(arguments)
    except SystemExit as exit_:
        if exit_.code:
            return [errors.getvalue().strip().splitlines()[-1]]
    except argparse.ArgumentError as error:
        return [str(error)]
    return []


def registered_markers() -> set[str]:
    pyproject = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())
    return {m.split(":")[0] for m in pyproject["tool"]["pytest"]["ini_options"]["markers"]}


def _merges_lost(kustomization: dict[str, Any], rendered: Render) -> list[str]:
    """A ConfigMap merge whose value the rendered output does not carry (a component listed
    beside it merges after it and wins): the reader's setting would silently not apply."""
    lost = []
    for generator in kustomization.get("configMapGenerator", []):
        if generator.get("behavior") != "merge":
            continue
        maps = [r for r in rendered.of_kind("ConfigMap")
                if r["metadata"]["name"].startswith(f"{generator['name']}-")]  # fmt: skip
        for literal in generator.get("literals", []):
            key, _, value = literal.partition("=")
            if maps and all((m.get("data") or {}).get(key) != value for m in maps):
                lost.append(f"configMapGenerator {generator['name']}: {key}={value} does not "
                            "reach the rendered ConfigMap (a component's merge wins)")  # fmt: skip
    return lost
