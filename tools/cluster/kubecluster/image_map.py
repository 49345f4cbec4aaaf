"""Which file of this checkout stands for each path of the serving image.

There are no images on this machine: the pod runner runs the container's own command and args,
with each image path replaced by its local counterpart. The table is read from the Dockerfile
where the Dockerfile names the path (the pod hooks' `ln -s` lines, the model repository's COPY,
ENV), and otherwise says which Dockerfile line it stands for. A path outside the table is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kubecluster.layout import CHECKOUT

# The image that the manifests run (kustomize/base: images[].newName), whatever its tag or digest.
SERVING_IMAGE_REPOSITORY = "scalable-inference-server"
HOOKS_BIN = "/opt/scalable-inference-server/bin"
# `ln -s ../<path in the image's unit folder> <HOOKS_BIN>/<name>`: relative to HOOKS_BIN's parent.
HOOK_LINK = re.compile(r"ln -s \.\./(?P<path>\S+) " + re.escape(HOOKS_BIN) + r"/(?P<name>\S+)")
MODELS_COPY = re.compile(r"COPY --from=models /src/model_repository/ (?P<target>/\S+?)/?$", re.M)
# `COPY [--chmod=...] <checkout folder>/ <image folder>/` in the last stage (not --from a stage).
CHECKOUT_COPY = re.compile(
    r"^COPY (?:--(?!from)\S+ )*(?P<source>[A-Za-z0-9_.-]+)/ (?P<target>/\S+?)/?$", re.M
)
ENV_PAIR = re.compile(r"(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>\S+)")
# FROM nvcr.io/nvidia/tritonserver: the server lives here in NVIDIA's images.
TRITONSERVER_IN_IMAGE = "/opt/tritonserver/bin/tritonserver"


class UnmappableContainer(ValueError):
    pass


@dataclass(frozen=True)
class ImageMap:
    """Image path -> local path, exact files and folder prefixes, plus the image's ENV."""

    files: dict[str, Path]
    folders: dict[str, Path]
    image_env: dict[str, str]
    # Arguments a mapped executable needs because a default of the image does not hold here.
    added_arguments: dict[str, list[str]]
    # The host folders every mapped path lies in (the checkout, the local server's folder).
    host_roots: tuple[Path, ...] = ()

    def map_path(self, value: str) -> str | None:
        if value in self.files:
            return str(self.files[value])
        for image_folder, local in self.folders.items():
            if value == image_folder or value.startswith(image_folder + "/"):
                return str(local) + value[len(image_folder) :]
        return None

    def map_argument(self, argument: str) -> str:
        """An argument that is an image path, or `--flag=<image path>`, gets the local path;
        any other argument is passed as it is."""
        mapped = self.map_path(argument)
        if mapped is not None:
            return mapped
        flag, separator, value = argument.partition("=")
        if separator and value.startswith("/"):
            mapped = self.map_path(value)
            if mapped is not None:
                return f"{flag}={mapped}"
        return argument

    def executable(self, image_path: str, container: str) -> str:
        mapped = self.map_path(image_path)
        if mapped is None:
            known = ", ".join(sorted(self.files))
            raise UnmappableContainer(
                f"container {container!r}: {image_path!r} is not a path of the serving image that "
                f"this machine has a counterpart for (known: {known})"
            )
        return mapped


def serving_image_map(tritonserver: Path, checkout: Path = CHECKOUT) -> ImageMap:
    dockerfile = (checkout / "Dockerfile").read_text()
    last_stage = final_stage(dockerfile)
    folders: dict[str, Path] = {
        match["target"]: checkout / match["source"] for match in CHECKOUT_COPY.finditer(last_stage)
    }
    unit_root = str(Path(HOOKS_BIN).parent)
    files = {}
    for match in HOOK_LINK.finditer(dockerfile):
        in_image = f"{unit_root}/{match['path']}"
        local = next(
            (
                str(local) + in_image[len(image_folder) :]
                for image_folder, local in folders.items()
                if in_image.startswith(image_folder + "/")
            ),
            None,
        )
        if local is None:
            raise UnmappableContainer(f"the Dockerfile links {in_image}, which no COPY provides")
        files[f"{HOOKS_BIN}/{match['name']}"] = Path(local)
    files[TRITONSERVER_IN_IMAGE] = tritonserver
    # NVIDIA's tritonserver looks for its backends in /opt/tritonserver/backends by default;
    # the local one keeps them beside its binary (inference_tools.triton_runtime).
    added = {str(tritonserver): [f"--backend-directory={tritonserver.parent.parent / 'backends'}"]}
    models = MODELS_COPY.search(dockerfile)
    if models:
        folders[models["target"]] = checkout / "model_repository"
    image_env = final_stage_env(dockerfile)
    if "PYTHONPATH" in image_env:
        # The serving unit's folder in the image (COPY serving/ ...): its checkout counterpart.
        mapped = ImageMap(files, folders, {}, {}).map_path(image_env["PYTHONPATH"])
        if mapped is None:
            raise UnmappableContainer(f"PYTHONPATH {image_env['PYTHONPATH']} is no copied folder")
        image_env["PYTHONPATH"] = mapped
    if not files.keys() >= {f"{HOOKS_BIN}/triton-probe", f"{HOOKS_BIN}/triton-drain"}:
        raise UnmappableContainer("the Dockerfile no longer links the pod hooks the runner expects")
    return ImageMap(
        files=files, folders=folders, image_env=image_env, added_arguments=added,
        host_roots=(checkout, tritonserver.parent.parent),
    )  # fmt: skip


def final_stage(dockerfile: str) -> str:
    """The image's last stage (continuation lines joined)."""
    return re.split(r"^FROM .*$", dockerfile.replace("\\\n", " "), flags=re.M)[-1]


def final_stage_env(dockerfile: str) -> dict[str, str]:
    """The ENV of the image's last stage (continuation lines joined)."""
    stage = final_stage(dockerfile)
    env: dict[str, str] = {}
    for line in stage.splitlines():
        if line.startswith("ENV "):
            env.update({m["key"]: m["value"] for m in ENV_PAIR.finditer(line[4:])})
    return env


def is_serving_image(image: str) -> bool:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0] == SERVING_IMAGE_REPOSITORY
