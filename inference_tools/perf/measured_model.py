"""Which model a benchmark or a calibration loads, and the requests it sends, from the repository.

The model is the one named, else the repository's default (`default_measured_model` of
`model_roles`). A model that takes one text per request gets the benchmark's text data set under
its own input name; any other model gets perf_analyzer's generated data, shaped from the model's
metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pod_hooks.model_roles import ModelRoles

from inference_tools.model_config import roles_from_folder
from inference_tools.perf import dataset


@dataclass(frozen=True)
class MeasuredModel:
    model: str
    input_data: Path | None  # None: perf_analyzer generates the inputs
    roles: ModelRoles

    @property
    def is_default(self) -> bool:
        return self.model == self.roles.default_measured_model()


def choose_measured_model(
    model_repository: Path,
    model: str | None,
    input_data_path: Path,
    texts: list[dataset.Text] | None = None,
) -> MeasuredModel:
    """The named (or default) model, checked to exist, with its input data written if needed."""
    roles = roles_from_folder(model_repository)
    chosen = roles.select([model])[0] if model else roles.default_measured_model()
    text_input = roles.text_input(chosen)
    if text_input is None:
        return MeasuredModel(chosen, None, roles)
    texts = texts if texts is not None else dataset.generate_texts()
    dataset.write_json(dataset.triton_input_data(texts, text_input), input_data_path)
    return MeasuredModel(chosen, input_data_path, roles)
