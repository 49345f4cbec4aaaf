"""Model names that could leave the store are refused; the served-version block is rewritten."""

from __future__ import annotations

from pathlib import Path

import pytest
from inference_tools.model_config import ModelConfigSyntaxError, parse_model_config
from inference_tools.publishing.names import InvalidModelNameError, check_model_name
from inference_tools.publishing.sources import read_model_source
from inference_tools.publishing.stores import LocalFolderStore
from inference_tools.publishing.versions import (
    POLICY_MARKER,
    next_version,
    served_versions,
    with_served_versions,
)

from tests.publishing.models import SCALER_CONFIG, scaler_folder


@pytest.mark.parametrize("name", ["minilm", "text_embedding", "bert-base.v2", "a", "Model9"])
def test_valid_names_are_accepted(name):
    assert check_model_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("..", r"'\.\.'"),
        ("../escape", "path separator"),
        ("a/b", "path separator"),
        ("/etc", "path separator"),
        ("a\\b", "path separator"),
        ("x..y", r"'\.\.'"),
        (".hidden", "not allowed"),
        ("-flag", "not allowed"),
        ("has space", "not allowed"),
        ("semi;colon", "not allowed"),
        ("caf\u00e9", "not allowed"),
        ("nul\x00", "not allowed"),
        ("x" * 129, "longer than 128"),
    ],
)
def test_bad_names_are_refused(name, reason):
    with pytest.raises(InvalidModelNameError, match=reason):
        check_model_name(name)


def test_a_bad_name_is_refused_before_the_store_is_touched(tmp_path: Path):
    folder = scaler_folder(tmp_path / "src", "scaler", 1.0)
    with pytest.raises(InvalidModelNameError):
        read_model_source(folder, name="../../outside")
    with pytest.raises(InvalidModelNameError):
        LocalFolderStore(tmp_path / "store").version_folders("../outside")
    assert not (tmp_path / "store").exists()


def test_policy_block_replaces_itself_and_keeps_the_users_comments():
    text = SCALER_CONFIG.format(name="scaler")
    first = with_served_versions(text, [1], "config.pbtxt")
    assert first.startswith("# y = x * factor")  # the user's text is kept as written
    assert served_versions(parse_model_config(first)) == [1]
    second = with_served_versions(first, [3, 2], "config.pbtxt")
    assert second.count(POLICY_MARKER) == 1
    assert served_versions(parse_model_config(second)) == [2, 3]
    assert "# y = x * factor" in second


def test_a_users_own_version_policy_is_replaced():
    text = SCALER_CONFIG.format(name="scaler") + "version_policy { latest { num_versions: 2 } }\n"
    published = with_served_versions(text, [4], "config.pbtxt")
    config = parse_model_config(published)
    assert served_versions(config) == [4]
    assert config.version_policy.WhichOneof("policy_choice") == "specific"


def test_a_config_typo_is_an_error_naming_the_line():
    text = SCALER_CONFIG.format(name="scaler").replace("max_batch_size", "max_bacth_size")
    with pytest.raises(ModelConfigSyntaxError, match=r"config\.pbtxt:4:"):
        with_served_versions(text, [1], "config.pbtxt")


def test_next_version_is_one_above_the_highest_folder():
    assert next_version([]) == 1
    assert next_version([1, 2, 7]) == 8
