"""Which models of a repository are entry points, ensembles or composing steps, from their configs.

Nothing in the project names a model: the probe, the benchmarks, calibration and publishing ask
this module. A model's role follows from the configs alone:

- an *ensemble* has `platform: "ensemble"`; the models its `ensemble_scheduling` steps call are
  *composing* models;
- an *entry model* is one that no ensemble calls: what clients send requests to (ensembles and
  plain models alike);
- the *canary* of a model is the smallest valid request its config (or its metadata) allows:
  batch 1, every variable dimension 1, ones, or a short string for BYTES inputs.

The configs come from a folder (`inference_tools.model_config.roles_from_folder`, Triton's
protobuf schema) or from a running server (`configs_from_server`: the repository index and the
model configuration APIs, READY models only). An explicit list of entry models overrides the
derivation (`select`); a named model's canary needs only the unrestricted metadata API
(`canary_from_metadata`).

Standard library only: triton-probe and triton-drain import this module inside the serving
container, where only the Python standard library is there to rely on.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The header Triton's restricted APIs check (the Deployment's --http-restricted-api) and the
# environment variable the container carries its value in.
ADMIN_HEADER = "x-triton-admin-key"
ADMIN_KEY_ENV = "TRITON_ADMIN_KEY"
CANARY_TEXT = "health check"
ENSEMBLE_PLATFORM = "ensemble"

# Model config data types and the datatypes of the KServe v2 inference protocol.
_V2_DATATYPES = {
    "TYPE_BOOL": "BOOL",
    "TYPE_UINT8": "UINT8",
    "TYPE_UINT16": "UINT16",
    "TYPE_UINT32": "UINT32",
    "TYPE_UINT64": "UINT64",
    "TYPE_INT8": "INT8",
    "TYPE_INT16": "INT16",
    "TYPE_INT32": "INT32",
    "TYPE_INT64": "INT64",
    "TYPE_FP16": "FP16",
    "TYPE_FP32": "FP32",
    "TYPE_FP64": "FP64",
    "TYPE_BF16": "BF16",
    "TYPE_STRING": "BYTES",
}


class ModelRolesError(RuntimeError):
    """The configs cannot be read or do not hold what was asked for; the message says why."""


@dataclass(frozen=True)
class ModelRoles:
    configs: Mapping[str, Mapping[str, Any]]  # model name -> config as Triton's JSON

    @property
    def ensembles(self) -> tuple[str, ...]:
        return tuple(
            sorted(n for n, c in self.configs.items() if c.get("platform") == ENSEMBLE_PLATFORM)
        )

    @property
    def composing(self) -> tuple[str, ...]:
        called = {
            str(step["model_name"])
            for name in self.ensembles
            for step in self.configs[name].get("ensemble_scheduling", {}).get("step", [])
        }
        return tuple(sorted(called))

    @property
    def entry_models(self) -> tuple[str, ...]:
        composing = set(self.composing)
        return tuple(sorted(n for n in self.configs if n not in composing))

    def select(self, override: Iterable[str] = ()) -> tuple[str, ...]:
        """The entry models, or the `override` list when one is given (checked to exist)."""
        chosen = tuple(override)
        if not chosen:
            if not self.entry_models:
                raise ModelRolesError("the repository has no model to send requests to")
            return self.entry_models
        unknown = [name for name in chosen if name not in self.configs]
        if unknown:
            raise ModelRolesError(
                f"model(s) {', '.join(unknown)} not in the repository; it has "
                f"{', '.join(sorted(self.configs)) or 'no models'}"
            )
        return chosen

    def default_measured_model(self) -> str:
        """The model benchmarks and calibration load when none is named: the first ensemble
        clients call (a whole pipeline queues in every step), else the first entry model."""
        entry = self.entry_models
        ensembles = [name for name in entry if name in self.ensembles]
        if not entry:
            raise ModelRolesError("the repository has no model to send requests to")
        return (ensembles or list(entry))[0]

    def text_input(self, model: str) -> str | None:
        """The name of `model`'s input when it takes one text per request, else None."""
        inputs = [i for i in self.configs[model].get("input", []) if not i.get("optional")]
        if len(inputs) == 1 and inputs[0].get("data_type") == "TYPE_STRING":
            return str(inputs[0]["name"])
        return None

    def canary_request(self, model: str) -> dict[str, Any]:
        """The JSON body of the smallest valid inference request to `model`."""
        config = self.configs[model]
        batch = [-1] if int(config.get("max_batch_size", 0)) > 0 else []
        tensors = []
        for spec in config.get("input", []):
            if spec.get("optional"):
                continue
            data_type = str(spec.get("data_type", ""))
            shape = batch + [int(d) for d in spec.get("dims", [])]
            tensors.append((str(spec["name"]), _V2_DATATYPES.get(data_type, data_type), shape))
        return canary_body(model, tensors)


def canary_body(model: str, tensors: Iterable[tuple[str, str, Sequence[int]]]) -> dict[str, Any]:
    """A request with every input at its smallest shape (variable dimensions 1), all ones or
    a short text: (name, v2 datatype, shape) as the model metadata API lists them.

    Ones rather than zeros: a row of zeros is what models refuse as empty (an all-zero
    attention mask has no token to pool), and a refused canary reads as a broken server."""
    inputs = []
    for name, datatype, shape in tensors:
        if datatype not in _V2_DATATYPES.values():
            raise ModelRolesError(
                f"model {model!r}: input {name!r} has data type {datatype!r}, for which no "
                "canary value exists; name another model to probe"
            )
        sizes = [max(int(d), 1) for d in shape]
        count = 1
        for size in sizes:
            count *= size
        value: Any = {"BYTES": CANARY_TEXT, "BOOL": False}.get(datatype, 1)
        inputs.append({"name": name, "shape": sizes, "datatype": datatype, "data": [value] * count})
    return {"inputs": inputs}


def canary_from_metadata(base_url: str, model: str, timeout_s: float = 3.0) -> dict[str, Any]:
    """The canary of a named model from the model metadata API, which no server restricts."""
    metadata = _read_json(
        urllib.request.Request(f"{base_url.rstrip('/')}/v2/models/{model}"), timeout_s
    )
    tensors = [(str(t["name"]), str(t["datatype"]), t["shape"]) for t in metadata["inputs"]]
    return canary_body(model, tensors)


def _read_json(request: urllib.request.Request, timeout_s: float) -> Any:
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", errors="replace")[:200]
        hint = (
            f"; the model repository and model configuration APIs are restricted: set "
            f"{ADMIN_KEY_ENV} to the {ADMIN_HEADER} value, or name the models explicitly"
            if error.code in (401, 403)
            else ""
        )
        raise ModelRolesError(f"{request.full_url} answered {error.code}: {detail}{hint}") from None
    except (OSError, ValueError) as error:
        raise ModelRolesError(f"no answer from {request.full_url}: {error}") from None


def configs_from_server(
    base_url: str, admin_key: str | None = None, timeout_s: float = 3.0
) -> dict[str, dict[str, Any]]:
    """The configs of the models a running Triton has READY, over its HTTP API."""
    headers = {"Content-Type": "application/json"}
    if admin_key:
        headers[ADMIN_HEADER] = admin_key
    base_url = base_url.rstrip("/")
    index = _read_json(
        urllib.request.Request(
            f"{base_url}/v2/repository/index", data=b"{}", headers=headers, method="POST"
        ),
        timeout_s,
    )
    ready = sorted({str(entry["name"]) for entry in index if entry.get("state") == "READY"})
    return {
        name: _read_json(
            urllib.request.Request(f"{base_url}/v2/models/{name}/config", headers=headers),
            timeout_s,
        )
        for name in ready
    }


def roles_from_server(
    base_url: str, admin_key: str | None = None, timeout_s: float = 3.0
) -> ModelRoles:
    return ModelRoles(configs_from_server(base_url, admin_key, timeout_s))


def describe(roles: ModelRoles, override: Sequence[str] = ()) -> str:
    """A short human-readable summary, for command output and errors."""
    return (
        f"entry models: {', '.join(roles.select(override))}; "
        f"ensembles: {', '.join(roles.ensembles) or 'none'}; "
        f"composing: {', '.join(roles.composing) or 'none'}"
    )
