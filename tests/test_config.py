"""Composing conf/ into a Scenario: every config group, overrides, and every kind of bad input."""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from cartsim.config import (
    CONF_DIR_ENV,
    ConfigError,
    RunConfig,
    compose_config,
    conf_dir,
    load_config,
    load_run_config,
    to_run_config,
    to_scenario,
)
from cartsim.scenario import Patient, Product, Regimen, Scenario, ScenarioError

CONF = conf_dir()
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir())
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
NAMED_GROUPS = ("model", "product", "disease")  # groups whose option name is the `name` field


def _override(group: str, option: str) -> str:
    # groups in the defaults list are swapped (group=option), experiments are added (+group=option)
    return f"+{group}={option}" if group == "experiment" else f"{group}={option}"


def test_conf_dir_is_the_repository_conf_folder():
    assert CONF == Path(__file__).resolve().parents[1] / "conf"
    assert {"model", "product", "disease", "regimen", "solver", "output", "experiment"} <= set(
        GROUPS)


def test_default_config_matches_the_dataclass_defaults():
    # the CLI default and a notebook's Scenario() must describe the same run
    scenario = load_config()
    assert type(scenario) is Scenario
    assert scenario == Scenario()


def test_load_run_config_adds_task_and_output_file():
    run = load_run_config()
    assert isinstance(run, RunConfig)
    assert (run.task, run.output_file) == ("simulate", "simulation.nc")
    assert run.scenario() == Scenario()


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_group_option_composes_to_a_valid_scenario(group, option):
    scenario = load_config([_override(group, option)])
    assert type(scenario) is Scenario
    if group in NAMED_GROUPS:
        assert getattr(scenario, group).name == option


def test_every_group_has_a_default_that_exists():
    defaults = OmegaConf.load(CONF / "config.yaml").defaults
    for entry in defaults:
        if isinstance(entry, str):
            continue  # config_schema, _self_
        ((group, option),) = entry.items()
        group = group.removeprefix("override ")
        assert (CONF / group / f"{option}.yaml").is_file(), f"{group}: {option}"


@pytest.mark.parametrize("base", ["nanobody", "ns7car", "ko"])
def test_donor_variants_differ_from_their_base_only_as_documented(base):
    auto = load_config([f"product={base}"]).product
    donor = load_config([f"product={base}_donor"]).product
    assert (auto.donor_derived, donor.donor_derived) == (False, True)
    assert donor.memory_fraction == pytest.approx(auto.memory_fraction + 0.1)
    same = [f.name for f in dataclasses.fields(Product)
            if f.name not in ("name", "label", "donor_derived", "memory_fraction")]
    assert {k: getattr(donor, k) for k in same} == {k: getattr(auto, k) for k in same}


def test_presets_carry_the_documented_values():
    ns7 = load_config(["product=ns7car"]).product
    assert (ns7.residual_cd7, ns7.memory_fraction) == (0.10, 0.35)
    assert load_config(["product=ko"]).product.residual_cd7 == 0.02
    tlbl = load_config(["disease=tlbl"]).disease
    assert (tlbl.blast_growth_per_day, tlbl.em_volume_cm3) == (0.03, 50.0)
    aml = load_config(["disease=cd7_aml"]).disease
    assert (aml.blast_growth_per_day, aml.cd7_density) == (0.06, 0.5)
    low = load_config(["regimen=flu_cy_low"]).regimen
    high = load_config(["regimen=flu_cy_high"]).regimen
    assert (low.flu_mg_m2, low.cy_mg_m2) == (25.0, 250.0)
    assert (high.flu_mg_m2, high.cy_mg_m2) == (30.0, 500.0)
    assert low.ld_days == high.ld_days == [-5.0, -4.0, -3.0]
    assert load_config(["model=stein2019"]).model.name == "stein2019"


def test_experiment_overrides_product_and_patient():
    scenario = load_config(["+experiment=high_burden_ko"])
    assert scenario.product == load_config(["product=ko"]).product
    assert scenario.patient.marrow_blast_pct == 80.0


def test_every_yaml_value_has_a_comment():
    # each number carries its unit and a source or "assumption: why" (names are identifiers)
    missing = []
    for path in CONF.rglob("*.yaml"):
        if path.name == "config.yaml":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            m = re.match(r"^([a-z_0-9]+):\s*[^\s#]", line)
            if m and m.group(1) not in ("name", "label") and "#" not in line:
                missing.append(f"{path.relative_to(CONF)}:{i}: {line}")
    patient_keys = {f.name for f in dataclasses.fields(Patient)}
    for i, line in enumerate((CONF / "config.yaml").read_text().splitlines(), 1):
        m = re.match(r"^\s+([a-z_0-9]+):", line)
        if m and m.group(1) in patient_keys and "#" not in line:
            missing.append(f"config.yaml:{i}: {line}")
    assert not missing, "values without a unit/source comment:\n" + "\n".join(missing)


def test_overrides_land_in_the_scenario():
    scenario = load_config([
        "product=ko",
        "disease=tlbl",
        "patient.marrow_blast_pct=60",
        "regimen.car_dose_per_kg=5e5",
        "regimen.car_days=[0,7]",
        "regimen.car_fractions=[0.5,0.5]",
        "regimen.toci_il6_threshold=500",
        "+model.params.k_kill=0.25",
        "solver.method=rodas4",
        "output.times=[0,7,28]",
        "seed=7",
    ])
    assert scenario.product.name == "ko"
    assert scenario.disease.name == "tlbl"
    assert scenario.patient.marrow_blast_pct == 60.0
    assert scenario.regimen.car_dose_per_kg == 5e5
    assert scenario.regimen.car_days == [0.0, 7.0]
    assert scenario.regimen.car_fractions == [0.5, 0.5]
    assert scenario.regimen.toci_il6_threshold == 500.0
    assert scenario.model.params == {"k_kill": 0.25}
    assert scenario.solver.method == "rodas4"
    assert scenario.output.times == [0.0, 7.0, 28.0]
    assert scenario.seed == 7


def _direct_message(factory) -> str:
    with pytest.raises(ScenarioError) as info:
        factory()
    return str(info.value)


# (overrides, the message the dataclass itself gives for the same value)
VALUE_ERRORS = {
    "negative dose": (["regimen.car_dose_per_kg=-1"],
                      lambda: Regimen(car_dose_per_kg=-1.0)),
    "nan dose": (["regimen.car_dose_per_kg=nan"],
                 lambda: Regimen(car_dose_per_kg=math.nan)),
    "blast pct 120": (["patient.marrow_blast_pct=120"],
                      lambda: Patient(marrow_blast_pct=120.0)),
    "ld_days out of order": (["regimen.ld_days=[-3,-4,-5]"],
                             lambda: Regimen(ld_days=[-3.0, -4.0, -5.0])),
    "ld_days after CAR-T": (["regimen.ld_days=[-2,-1,1]"],
                            lambda: Regimen(ld_days=[-2.0, -1.0, 1.0])),
    "car_fractions sum": (["regimen.car_days=[0,7]", "regimen.car_fractions=[0.5,0.4]"],
                          lambda: Regimen(car_days=[0.0, 7.0], car_fractions=[0.5, 0.4])),
    "memory+exhausted > 1": (["product.memory_fraction=0.9", "product.exhausted_fraction=0.2"],
                             lambda: Product(memory_fraction=0.9, exhausted_fraction=0.2)),
}


@pytest.mark.parametrize("case", list(VALUE_ERRORS))
def test_bad_values_raise_the_dataclass_message_unchanged(case):
    overrides, factory = VALUE_ERRORS[case]
    with pytest.raises(ScenarioError) as info:
        load_config(overrides)
    assert type(info.value) is ScenarioError
    assert str(info.value) == _direct_message(factory)


@pytest.mark.parametrize(("overrides", "needles"), [
    (["regimen.car_dose_per_kg=-1"], ["regimen.car_dose_per_kg=-1.0", ">= 0"]),
    (["regimen.car_dose_per_kg=nan"], ["regimen.car_dose_per_kg=nan", "finite"]),
    (["patient.marrow_blast_pct=120"], ["patient.marrow_blast_pct=120.0", "< 100"]),
    (["regimen.ld_days=[-3,-4,-5]"], ["regimen.ld_days", "strictly increasing"]),
    (["regimen.car_days=[0,7]", "regimen.car_fractions=[0.5,0.4]"],
     ["regimen.car_fractions", "summing to 1"]),
    (["output_file=../x.nc"], ["output_file", "bare file name"]),
], ids=["negative", "nan", "blast120", "ld_order", "fractions", "output_file"])
def test_value_errors_name_key_value_and_what_is_accepted(overrides, needles):
    with pytest.raises(ScenarioError) as info:
        load_run_config(overrides)
    for needle in needles:
        assert needle in str(info.value)


@pytest.mark.parametrize(("overrides", "needles"), [
    (["regimen.car_dose=1"], ["regimen.car_dose", "Regimen", "accepted keys", "car_dose_per_kg"]),
    (["+regimen.car_dose=1"], ["regimen.car_dose", "accepted keys", "car_dose_per_kg"]),
    (["patient.blasts=50"], ["patient.blasts", "marrow_blast_pct"]),
    (["regimen.car_dose_per_kg=abc"], ["regimen.car_dose_per_kg", "'abc'", "Float"]),
    (["seed=1.5"], ["seed", "Integer"]),
    (["solver.max_steps=many"], ["solver.max_steps", "Integer"]),
    (["regimen.flu_renal_adjust=maybe"], ["regimen.flu_renal_adjust", "not a valid bool"]),
    (["product=foo"], ["product/foo", "Available options", "nanobody", "ko_donor", "ns7car"]),
    (["disease=aml"], ["disease/aml", "cd7_aml", "tlbl"]),
    (["+experiment=nope"], ["experiment/nope", "high_burden_ko"]),
    (["seed=1", "regimen.car_days=[0"], ["override 'regimen.car_days=[0'", "[0"]),
], ids=["unknown-key", "appended-key", "patient-key", "float", "int", "int2", "bool",
        "product", "disease", "experiment", "syntax"])
def test_composition_errors_name_the_key(overrides, needles):
    with pytest.raises(ConfigError) as info:
        load_config(overrides)
    for needle in needles:
        assert needle in str(info.value)


def test_model_name_is_checked():
    with pytest.raises(ScenarioError, match=r"model.name='foo'.*cd7, stein2019"):
        load_config(["model.name=foo"])


def test_load_config_is_reentrant():
    first = load_config(["regimen.car_dose_per_kg=1e5"])
    second = load_config(["regimen.car_dose_per_kg=1e7"])
    third = load_config()
    assert (first.regimen.car_dose_per_kg, second.regimen.car_dose_per_kg,
            third.regimen.car_dose_per_kg) == (1e5, 1e7, 1e6)
    assert not GlobalHydra.instance().is_initialized()


def test_load_config_inside_an_initialised_hydra_restores_it(tmp_path):
    (tmp_path / "other.yaml").write_text("answer: 42\n")
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        assert load_config(["seed=5"]).seed == 5
        # the outer Hydra still composes its own config
        assert compose(config_name="other").answer == 42
    assert not GlobalHydra.instance().is_initialized()


def test_conf_dir_from_environment(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    text = (conf / "config.yaml").read_text()
    (conf / "config.yaml").write_text(text.replace("seed: 0 ", "seed: 11"))
    monkeypatch.setenv(CONF_DIR_ENV, str(conf))
    assert conf_dir() == conf.resolve()
    assert load_config().seed == 11


def test_missing_conf_dir_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(CONF_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=rf"nowhere.*{CONF_DIR_ENV}"):
        load_config()


def test_compose_config_keeps_hydra_node_on_request():
    cfg = compose_config(["regimen.car_dose_per_kg=2e6"], return_hydra_config=True)
    assert cfg.hydra.job.chdir is False
    assert OmegaConf.to_container(cfg.hydra.sweep)["subdir"] == "${hydra.job.num}"
    assert cfg.regimen.car_dose_per_kg == 2e6


# --- to_scenario -------------------------------------------------------------------------

def test_to_scenario_from_a_partial_dict_fills_defaults():
    scenario = to_scenario({"regimen": {"car_dose_per_kg": 5e5}, "seed": 3})
    assert scenario == Scenario(regimen=Regimen(car_dose_per_kg=5e5), seed=3)


@pytest.mark.parametrize(("cfg", "needles"), [
    ({"regimen": {"car_dose": 1}}, ["regimen.car_dose", "accepted keys in regimen",
                                    "car_dose_per_kg"]),
    ({"regime": {}}, ["regime", "accepted keys at the top level", "regimen"]),
    ({"task": "simulate"}, ["task", "accepted keys at the top level"]),
])
def test_to_scenario_rejects_unknown_keys_naming_them(cfg, needles):
    with pytest.raises(ConfigError) as info:
        to_scenario(cfg)
    for needle in needles:
        assert needle in str(info.value)


def test_to_scenario_type_and_value_errors():
    with pytest.raises(ConfigError, match="regimen.car_dose_per_kg"):
        to_scenario({"regimen": {"car_dose_per_kg": "abc"}})
    with pytest.raises(ScenarioError, match=r"patient.marrow_blast_pct=120"):
        to_scenario({"patient": {"marrow_blast_pct": 120}})


def test_to_scenario_from_scenario_run_config_and_dictconfig():
    scenario = Scenario(patient=Patient(marrow_blast_pct=70.0))
    assert to_scenario(scenario) == scenario
    run = to_run_config(scenario)
    assert isinstance(run, RunConfig) and run.task == "simulate"
    assert type(to_scenario(run)) is Scenario and to_scenario(run) == scenario
    composed = compose_config(["patient.marrow_blast_pct=70"])
    assert to_scenario(composed) == scenario
    assert to_scenario(OmegaConf.create({"patient": {"marrow_blast_pct": 70}})) == scenario


def test_to_scenario_revalidates_a_mutated_scenario():
    scenario = Scenario()
    scenario.regimen.car_dose_per_kg = -5.0
    with pytest.raises(ScenarioError, match="regimen.car_dose_per_kg=-5.0"):
        to_scenario(scenario)


def test_to_scenario_rejects_non_mappings():
    with pytest.raises(ConfigError, match="expected a mapping"):
        to_scenario(["not", "a", "mapping"])
