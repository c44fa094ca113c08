"""The schema is the config's one reference: complete, with the library's defaults, and the source
of config/README.md."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from emcom import config, configdoc, names, step as step_lib
from emcom.data import synthetic
from emcom.report.spec import ReportSpec
from emcom.settings import STAGE_SETTINGS

REPO = Path(__file__).resolve().parent.parent
SCHEMA = yaml.safe_load(configdoc.SCHEMA.read_text())


def _props(*path):
    node = SCHEMA
    for part in path:
        node = node[part]
    return node["properties"]


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def test_config_readme_is_generated_from_the_schema():
    assert (REPO / "config/README.md").read_text() == configdoc.render(SCHEMA), (
        "config/README.md is stale: run `python -m emcom.configdoc > config/README.md`")


def test_every_training_key_is_described_with_the_library_default():
    train = _props("$defs", "train_overrides")
    defaults = config.TrainConfig().to_dict()
    assert set(train) == set(defaults)
    assert train["seed"]["default"] == defaults["seed"] and train["seed"]["description"]
    for section, values in defaults.items():
        if section == "seed":
            continue
        props = train[section]["properties"]
        assert set(props) == set(values), section
        for key, value in values.items():
            assert props[key]["description"], f"{section}.{key}"
            assert props[key]["default"] == value, f"{section}.{key}"


@pytest.mark.parametrize("stage", sorted(STAGE_SETTINGS))
def test_every_stage_setting_is_described_with_the_library_default(stage):
    props = _props("properties", stage)
    fields = dataclasses.fields(STAGE_SETTINGS[stage])
    assert set(props) == {f.name for f in fields}
    for f in fields:
        assert props[f.name]["description"] and props[f.name]["default"] == _plain(f.default), f.name


def test_report_and_synthetic_keys_carry_the_library_defaults():
    report = _props("properties", "report")
    for f in dataclasses.fields(ReportSpec):
        assert report[f.name]["description"], f.name
        if f.name not in ("tables", "figures"):
            assert report[f.name]["default"] == f.default, f.name
    params = SCHEMA["properties"]["datasets"]["additionalProperties"]["then"]["properties"]
    params = params["params"]["properties"]
    assert {k: p["default"] for k, p in params.items()} == synthetic._defaults()
    assert all(p["description"] for p in params.values())


def test_schema_names_the_splits_and_stages_of_emcom_names():
    assert tuple(SCHEMA["$defs"]["split"]["enum"]) == names.SPLITS
    stages = SCHEMA["properties"]["experiments"]["additionalProperties"]["properties"]["stages"]
    assert tuple(stages["items"]["enum"]) == names.CHECKPOINT_STAGES


def test_schema_enums_are_the_choices_the_library_accepts():
    for dotted, choices in config._CHOICES.items():
        section, key = dotted.split(".")
        props = _props("$defs", "train_overrides")[section]["properties"]
        assert tuple(props[key]["enum"]) == choices, dotted


def test_every_update_mode_has_a_step():
    assert tuple(step_lib._UPDATES) == config.UPDATE_MODES
