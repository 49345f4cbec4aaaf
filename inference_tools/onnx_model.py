"""An ONNX model run by the `onnxruntime` package, checked against its Triton model config.

This is the logic of the local server's Python-based `onnxruntime` backend. It refuses the
configs that Triton's C++ ONNX Runtime backend refuses, so a repository that loads locally
loads in the production image, and it runs each dynamic batch as one session call.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from python_backend.errors import InvalidInputError

LOG = logging.getLogger(__name__)

# Triton config data types and the ONNX Runtime type strings they correspond to.
TRITON_TO_ORT_TYPE = {
    "TYPE_BOOL": "tensor(bool)",
    "TYPE_UINT8": "tensor(uint8)",
    "TYPE_UINT16": "tensor(uint16)",
    "TYPE_UINT32": "tensor(uint32)",
    "TYPE_UINT64": "tensor(uint64)",
    "TYPE_INT8": "tensor(int8)",
    "TYPE_INT16": "tensor(int16)",
    "TYPE_INT32": "tensor(int32)",
    "TYPE_INT64": "tensor(int64)",
    "TYPE_FP16": "tensor(float16)",
    "TYPE_FP32": "tensor(float)",
    "TYPE_FP64": "tensor(double)",
    "TYPE_STRING": "tensor(string)",
}
DEFAULT_MODEL_FILENAME = "model.onnx"


class ModelConfigError(ValueError):
    """The model config does not describe the ONNX graph; the model must not load."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: str
    dims: tuple[int, ...]  # without the batch dimension when the model batches


def _specs(config: Mapping[str, Any], key: str) -> list[TensorSpec]:
    return [
        TensorSpec(entry["name"], entry["data_type"], tuple(int(d) for d in entry.get("dims", [])))
        for entry in config.get(key, [])
    ]


def _is_dynamic(dim: Any) -> bool:
    return not isinstance(dim, int) or dim < 0


def _check_tensors(
    model_name: str,
    kind: str,
    specs: Sequence[TensorSpec],
    graph: Mapping[str, ort.NodeArg],
    batching: bool,
    max_batch_size: int,
) -> None:
    for spec in specs:
        field = f"model '{model_name}': {kind} '{spec.name}'"
        node = graph.get(spec.name)
        if node is None:
            raise ModelConfigError(
                f"{field} in the config is not an {kind} of the ONNX graph "
                f"(the graph's {kind}s are {sorted(graph)})"
            )
        expected_type = TRITON_TO_ORT_TYPE.get(spec.data_type)
        if expected_type != node.type:
            raise ModelConfigError(
                f"{field}: data_type {spec.data_type} in the config, but the ONNX graph has "
                f"{node.type}"
            )
        graph_dims = list(node.shape)
        if batching:
            if not graph_dims:
                raise ModelConfigError(
                    f"{field}: max_batch_size {max_batch_size} needs a batch dimension, but the "
                    "graph's tensor is a scalar"
                )
            if not _is_dynamic(graph_dims[0]):
                raise ModelConfigError(
                    f"{field}: max_batch_size {max_batch_size} needs a dynamic first dimension, "
                    f"but the ONNX graph fixes it to {graph_dims[0]}; set max_batch_size: 0 "
                    "or export the graph with a dynamic batch axis"
                )
            graph_dims = graph_dims[1:]
        if len(graph_dims) != len(spec.dims):
            raise ModelConfigError(
                f"{field}: dims {list(spec.dims)} in the config, but the ONNX graph's shape "
                f"{'after the batch dimension ' if batching else ''}is {graph_dims}"
            )
        for position, (config_dim, graph_dim) in enumerate(zip(spec.dims, graph_dims, strict=True)):
            if _is_dynamic(graph_dim):
                continue
            if config_dim != graph_dim:
                raise ModelConfigError(
                    f"{field}: dims[{position}] is {config_dim} in the config, but the ONNX "
                    f"graph fixes it to {graph_dim}"
                )


SPINNING_CONFIG_KEY = "session.intra_op.allow_spinning"
# Config parameter: the longest any named variable dimension of the graph's inputs may be
# (the batch dimension aside). Triton's model configuration has no upper bound for a -1
# dimension, and the graph allocates for whatever arrives before it fails (an encoder's
# position table ends at 512 rows, but its word embeddings are gathered first: [8, 100000]
# token ids took 1.46 GB). Triton's C++ ONNX Runtime backend ignores parameters it does not
# know, so production configs carry it too.
MAX_SEQUENCE_LENGTH_KEY = "max_sequence_length"


# Config parameters `valid_range.<input>` = "LOW..HIGH": every value of that input must be a
# finite number in the inclusive range, or the request is refused with 400 before any batch
# runs (token ids past the vocabulary, a mask that is not 0/1, NaN pixels). And `nonempty_rows`
# = "<input>": each row of that input needs a non-zero value (an all-zero attention mask, or an
# empty sequence, pools to a zero vector that looks like an answer). The C++ backend ignores
# both keys; the encoder's graph maps out-of-vocabulary ids to [UNK] itself, so a batch never
# fails there either.
VALID_RANGE_PREFIX = "valid_range."
NONEMPTY_ROWS_KEY = "nonempty_rows"


def _parameter(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get("parameters", {}).get(key)
    return None if value is None else str(value.get("string_value", ""))


def session_options(config: Mapping[str, Any]) -> ort.SessionOptions:
    """Session options from the same config `parameters` Triton's ONNX Runtime backend reads."""
    options = ort.SessionOptions()
    intra = _parameter(config, "intra_op_thread_count")
    inter = _parameter(config, "inter_op_thread_count")
    if intra:
        options.intra_op_num_threads = int(intra)
    if inter:
        options.inter_op_num_threads = int(inter)
    if _parameter(config, "execution_mode") == "1":
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Every instance is its own stub process sharing the cores with the tokenizer
    # stubs and the server. An intra-op pool that spins between operators holds a core they
    # need: one instance with two threads on two cores showed p99 stalls of about 450 ms at
    # concurrency 1 with spinning and 21 ms without (docs/benchmarks.md, tuning).
    options.add_session_config_entry(SPINNING_CONFIG_KEY, "0")
    return options


# ONNX Runtime's INVALID_ARGUMENT status (its Python exception type for that status code).
ORT_INVALID_ARGUMENT = ort.capi.onnxruntime_pybind11_state.InvalidArgument
# The run option (and config parameter of Triton's ONNX Runtime backend, which sets it on every
# run) that lists the memory arenas to shrink when a run ends, e.g. "cpu:0". Without it, the
# arena keeps what the largest batch took for the life of the session.
ARENA_SHRINKAGE_KEY = "memory.enable_memory_arena_shrinkage"


def run_options(config: Mapping[str, Any]) -> ort.RunOptions:
    """Options of every session run, from the config `parameters` Triton's backend reads."""
    options = ort.RunOptions()
    # ONNX Runtime prints each failed run to stderr itself; the failure is logged here instead.
    options.log_severity_level = 4
    shrinkage = _parameter(config, ARENA_SHRINKAGE_KEY)
    if shrinkage:
        options.add_run_config_entry(ARENA_SHRINKAGE_KEY, shrinkage)
    return options


CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


def execution_providers(instance_kind: str, device_id: int = 0) -> list[Any]:
    """ONNX Runtime providers for a Triton instance of `instance_kind` ("CPU", "GPU", ...).

    A GPU instance runs on its own device through the CUDA provider (the `onnxruntime-gpu`
    build); without that build it fails to load rather than run on the CPU unnoticed.
    """
    if instance_kind.upper() != "GPU":
        return [CPU_PROVIDER]
    if CUDA_PROVIDER not in ort.get_available_providers():
        raise ModelConfigError(
            f"a KIND_GPU instance needs ONNX Runtime's {CUDA_PROVIDER}, which this onnxruntime "
            f"build lacks (it has {ort.get_available_providers()}): install onnxruntime-gpu, "
            "or serve the CPU config"
        )
    return [(CUDA_PROVIDER, {"device_id": device_id}), CPU_PROVIDER]


def _number(text: str) -> int | float:
    """An integer bound stays an integer: int64 ids compare exactly against it."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _valid_ranges(
    config: Mapping[str, Any], model_name: str
) -> dict[str, tuple[int | float, int | float]]:
    ranges = {}
    for key, value in config.get("parameters", {}).items():
        if not key.startswith(VALID_RANGE_PREFIX):
            continue
        text = str(value.get("string_value", ""))
        low, separator, high = text.partition("..")
        try:
            ranges[key.removeprefix(VALID_RANGE_PREFIX)] = (_number(low), _number(high))
        except ValueError:
            separator = ""
        if not separator:
            raise ModelConfigError(
                f"model '{model_name}': parameter {key} is {text!r}; write LOW..HIGH, e.g. 0..30521"
            )
    return ranges


class OnnxModel:
    def __init__(
        self,
        config: Mapping[str, Any],
        model_file: Path,
        providers: Sequence[Any] = (CPU_PROVIDER,),
    ) -> None:
        self.name = str(config.get("name", model_file.parent.parent.name))
        self.max_batch_size = int(config.get("max_batch_size", 0))
        self.inputs = _specs(config, "input")
        self.outputs = _specs(config, "output")
        max_length = _parameter(config, MAX_SEQUENCE_LENGTH_KEY)
        self.max_sequence_length = int(max_length) if max_length else None
        self.valid_ranges = _valid_ranges(config, self.name)
        nonempty = _parameter(config, NONEMPTY_ROWS_KEY)
        self.nonempty_rows_input = nonempty or None
        self.run_options = run_options(config)
        if not model_file.is_file():
            raise ModelConfigError(f"model '{self.name}': model file {model_file} does not exist")
        try:
            self.session = ort.InferenceSession(
                str(model_file),
                sess_options=session_options(config),
                providers=list(providers),
            )
        except Exception as error:  # ORT raises its own exception types for unreadable graphs
            raise ModelConfigError(
                f"model '{self.name}': ONNX Runtime cannot load {model_file}: {error}"
            ) from error
        self._validate()

    @classmethod
    def from_triton_args(
        cls,
        config: Mapping[str, Any],
        model_dir: Path,
        version: str,
        instance_kind: str = "CPU",
        device_id: int = 0,
    ) -> OnnxModel:
        filename = config.get("default_model_filename") or DEFAULT_MODEL_FILENAME
        providers = execution_providers(instance_kind, device_id)
        return cls(config, model_dir / version / filename, providers)

    def _validate(self) -> None:
        batching = self.max_batch_size > 0
        graph_inputs = {node.name: node for node in self.session.get_inputs()}
        graph_outputs = {node.name: node for node in self.session.get_outputs()}
        _check_tensors(self.name, "input", self.inputs, graph_inputs, batching, self.max_batch_size)
        _check_tensors(
            self.name, "output", self.outputs, graph_outputs, batching, self.max_batch_size
        )
        named = set(self.valid_ranges) | ({self.nonempty_rows_input} - {None})
        unknown = sorted(named - {spec.name for spec in self.inputs})
        if unknown:
            raise ModelConfigError(
                f"model '{self.name}': parameters {VALID_RANGE_PREFIX}* or {NONEMPTY_ROWS_KEY} "
                f"name {unknown}, which are not inputs of the config"
            )
        missing = sorted(set(graph_inputs) - {spec.name for spec in self.inputs})
        if missing:
            raise ModelConfigError(
                f"model '{self.name}': the ONNX graph needs inputs {missing} that the config "
                "does not declare"
            )

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [spec.name for spec in self.outputs]

    def check_request(self, feeds: Mapping[str, np.ndarray]) -> None:
        """Refuse, before any allocation, what the graph cannot take or must not try.

        Triton has checked names, data types, the batch size and the fixed dimensions. Left
        are the variable ones: Triton lets a -1 dimension through at any size, so each is held
        to `max_sequence_length`; and where the graph names a dimension (`sequence` for both
        token ids and mask), every input must agree on it, or the graph fails half-way through
        its work (a broadcast in the first attention layer).
        """
        named_sizes: dict[str, tuple[str, int]] = {}
        for node in self.session.get_inputs():
            shape = feeds[node.name].shape
            for position, (graph_dim, size) in enumerate(zip(node.shape, shape, strict=False)):
                if not isinstance(graph_dim, str):
                    continue
                limit = self.max_sequence_length
                batch_axis = position == 0 and self.max_batch_size > 0
                if limit is not None and not batch_axis and size > limit:
                    raise InvalidInputError(
                        f"model '{self.name}': input '{node.name}' has {size} in dimension "
                        f"{position} of shape {list(shape)}; the limit is {limit} "
                        f"(parameter {MAX_SEQUENCE_LENGTH_KEY})"
                    )
                first = named_sizes.setdefault(graph_dim, (node.name, size))
                if first[1] != size:
                    raise InvalidInputError(
                        f"model '{self.name}': dimension '{graph_dim}' is {first[1]} in input "
                        f"'{first[0]}' but {size} in input '{node.name}'; they must be equal"
                    )

        self._check_values(feeds)

    def _check_values(self, feeds: Mapping[str, np.ndarray]) -> None:
        """The value checks the config asks for (`valid_range.*`, `nonempty_rows`)."""
        for name, (low, high) in self.valid_ranges.items():
            values = feeds[name]
            # NaN compares false with every bound: it is looked for on its own.
            outside_mask = (values < low) | (values > high)
            if np.issubdtype(values.dtype, np.floating):
                outside_mask |= ~np.isfinite(values)
            if outside_mask.any():
                outside = values[outside_mask].flat[0]
                raise InvalidInputError(
                    f"model '{self.name}': input '{name}' holds {outside}; its values must lie "
                    f"in {low}..{high}"
                )
        if self.nonempty_rows_input is not None:
            rows = feeds[self.nonempty_rows_input]
            rows = rows.reshape(rows.shape[0], -1) if rows.ndim else rows.reshape(1, 1)
            empty = np.flatnonzero(~rows.any(axis=1))
            if empty.size:
                raise InvalidInputError(
                    f"model '{self.name}': row {int(empty[0])} of input "
                    f"'{self.nonempty_rows_input}' has no non-zero value (an empty sequence or "
                    "an all-zero mask); every row needs at least one"
                )

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.session.run(self.output_names, dict(feeds), self.run_options)
        return dict(zip(self.output_names, values, strict=True))

    def run_batched(
        self, requests: Sequence[Mapping[str, np.ndarray]]
    ) -> list[dict[str, np.ndarray] | Exception]:
        """Run many requests with as few session calls as their shapes allow.

        Requests whose inputs have equal shapes past the batch dimension are concatenated and
        run together, then split back; a failing group fails only its own requests.
        """
        results: list[dict[str, np.ndarray] | Exception] = [{} for _ in requests]
        accepted = []
        for index, feeds in enumerate(requests):
            try:
                self.check_request(feeds)
                accepted.append(index)
            except InvalidInputError as error:
                results[index] = error
        if self.max_batch_size <= 0:
            for index in accepted:
                results[index] = self._run_guarded(requests[index])
            return results
        groups: dict[tuple[tuple[int, ...], ...], list[int]] = defaultdict(list)
        for index in accepted:
            key = tuple(requests[index][name].shape[1:] for name in self.input_names)
            groups[key].append(index)
        for indices in groups.values():
            sizes = [requests[i][self.input_names[0]].shape[0] for i in indices]
            feeds = {
                name: np.concatenate([requests[i][name] for i in indices])
                if len(indices) > 1
                else requests[indices[0]][name]
                for name in self.input_names
            }
            outcome = self._run_guarded(feeds)
            if isinstance(outcome, Exception):
                # One request can fail a whole session call; alone, only the guilty one fails.
                for i in indices:
                    results[i] = outcome if len(indices) == 1 else self._run_guarded(requests[i])
                continue
            split_points = np.cumsum(sizes)[:-1]
            per_output = {name: np.split(value, split_points) for name, value in outcome.items()}
            for position, i in enumerate(indices):
                results[i] = {name: parts[position] for name, parts in per_output.items()}
        return results

    def _run_guarded(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | Exception:
        try:
            return self.run(feeds)
        except ORT_INVALID_ARGUMENT as error:
            # The input is wrong (an index out of range, a shape the graph cannot take): the
            # client's error, answered 400, logged in one line rather than a traceback each.
            LOG.warning("model '%s': request refused by the graph: %s", self.name, error)
            return InvalidInputError(f"model '{self.name}': {error}")
        except Exception as error:  # one bad group must not take the others down
            LOG.exception("model '%s': inference failed", self.name)
            return error
