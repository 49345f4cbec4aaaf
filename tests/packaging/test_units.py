"""The three units stay apart: the serving unit (serving/) is what the serving image takes, whole
and alone; the tooling (inference_tools/) installs with what its commands run; the lab (lab/)
is in neither and nothing of theirs imports it. Read from the sources, the Dockerfiles and
pyproject.toml, so that a file slipping into the wrong place fails here first.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.checkout import CHECKOUT

SERVING = CHECKOUT / "serving"
TOOLING = CHECKOUT / "inference_tools"
LAB = CHECKOUT / "lab"
SERVING_PACKAGES = {"python_backend", "pod_hooks"}
# What only the lab, or one extra, needs: never a runtime dependency of the tooling.
HEAVY = {"matplotlib", "fastapi", "uvicorn", "scikit-learn"}
# What the tooling's wheel is built from, and what the image's build stage copies to build it.
BUILD_SOURCES = {"pyproject.toml", "README.md", "inference_tools/", "serving/", "model_repository/"}


def imported_modules(root: Path) -> Iterator[tuple[Path, str]]:
    """(file, top-level module) of every absolute import under root, lazy imports included."""
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield path, node.module.split(".")[0]


def project(path: Path) -> dict:
    return tomllib.loads(path.read_text())["project"]


def pins(requirements: list[str]) -> dict[str, str]:
    parsed = [Requirement(text) for text in requirements]
    return {r.name.lower(): str(r.specifier) for r in parsed}


def stages(dockerfile: Path) -> list[list[str]]:
    """Each stage's instructions, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    result: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(line)
    return result


def copied(stage: list[str]) -> list[str]:
    """The sources of a stage's COPY instructions (`--from=STAGE path` for another stage's)."""
    sources = []
    for line in stage:
        words = line.split()
        if words[0].upper() != "COPY":
            continue
        options = [w for w in words[1:] if w.startswith("--")]
        paths = [w for w in words[1:] if not w.startswith("--")][:-1]
        origin = next((o.split("=", 1)[1] for o in options if o.startswith("--from=")), None)
        sources += [f"--from={origin} {p}" if origin else p for p in paths]
    return sources


def test_nothing_of_the_product_imports_the_lab() -> None:
    offenders = [
        f"{path.relative_to(CHECKOUT)} imports {module}"
        for root in (SERVING, TOOLING)
        for path, module in imported_modules(root)
        if module == "lab"
    ]
    assert offenders == []


def test_the_serving_unit_imports_the_standard_library_its_pins_and_itself() -> None:
    allowed = {*sys.stdlib_module_names, "__future__", *SERVING_PACKAGES, "numpy", "tokenizers"}
    allowed.add("triton_python_backend_utils")  # Triton's own module, inside the stub
    offenders = [
        f"{path.relative_to(CHECKOUT)} imports {module}"
        for path, module in imported_modules(SERVING)
        if module not in allowed
    ]
    assert offenders == []
    declared = pins(project(SERVING / "pyproject.toml")["dependencies"])
    assert set(declared) == {"numpy", "tokenizers"}


def test_the_serving_unit_pins_what_the_tooling_pins() -> None:
    serving = pins(project(SERVING / "pyproject.toml")["dependencies"])
    tooling = pins(project(CHECKOUT / "pyproject.toml")["dependencies"])
    assert {name: tooling.get(name) for name in serving} == serving


def test_the_tooling_installs_no_plotting_web_or_training_dependency() -> None:
    tooling = project(CHECKOUT / "pyproject.toml")
    assert set(pins(tooling["dependencies"])) & HEAVY == set()
    extras = tooling["optional-dependencies"]
    assert set(pins(extras["lab"])) == {"matplotlib", "fastapi", "uvicorn"}
    assert set(pins(extras["digits"])) == {"scikit-learn"}


def test_the_wheel_takes_the_tooling_and_the_serving_unit_not_the_lab() -> None:
    setuptools = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = setuptools["packages"]["find"]
    assert found["where"] == [".", "serving"]
    assert {pattern.rstrip("*") for pattern in found["include"]} == {
        "inference_tools",
        *SERVING_PACKAGES,
    }
    # Package data the tooling reads at run time: none of it lives in the lab any more.
    for pattern in setuptools["package-data"]["inference_tools"]:
        assert list(TOOLING.glob(pattern)), f"package data {pattern} matches nothing"


def test_the_serving_image_final_stage_takes_the_serving_unit_alone() -> None:
    *_, final = stages(CHECKOUT / "Dockerfile")
    assert copied(final) == ["serving/", "--from=models /src/model_repository/"]
    # The unit's dependencies at the unit's own pins, and nothing else installed.
    installs = [line for line in final if "pip install" in line]
    assert len(installs) == 1
    installed = re.findall(r'"([^"]+)"', installs[0])
    assert pins(installed) == pins(project(SERVING / "pyproject.toml")["dependencies"])
    assert "PYTHONPATH=/opt/scalable-inference-server/serving" in " ".join(final)


@pytest.mark.parametrize(
    ("dockerfile", "extras"), [("Dockerfile", "[digits]"), ("tools.Dockerfile", "[calibrate]")]
)
def test_the_build_stages_take_what_the_tooling_builds_from(dockerfile: str, extras: str) -> None:
    first, final = stages(CHECKOUT / dockerfile)
    assert set(copied(first)) == BUILD_SOURCES
    text = " ".join(first + final)
    assert "lab/" not in text
    # Only the extra that stage runs: build-models trains the digits model; calibrate runs
    # perf_analyzer and kubectl.
    assert extras in text
    assert "[lab]" not in text and ",lab" not in text


def test_the_docker_context_leaves_the_lab_out() -> None:
    allowed = [
        line[1:]
        for line in (CHECKOUT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    assert "lab/" not in allowed and "inference_tools/" in allowed and "serving/" in allowed
