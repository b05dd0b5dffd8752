"""PopulationSpec / Covariate: the YAML default, and every bad input naming its key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cartsim.population import COVARIATE_FIELDS, Covariate, PopulationSpec
from cartsim.scenario import Scenario, ScenarioError

YAML = Path(__file__).resolve().parents[2] / "conf" / "population" / "default.yaml"


def _from_yaml(overrides: dict | None = None) -> PopulationSpec:
    """The Hydra path: YAML merged onto the typed schema, then instantiated."""
    cfg = OmegaConf.merge(OmegaConf.structured(PopulationSpec), OmegaConf.load(YAML),
                          OmegaConf.create(overrides or {}))
    return OmegaConf.to_object(cfg)


def test_yaml_equals_the_dataclass_defaults():
    assert _from_yaml() == PopulationSpec()
    assert OmegaConf.to_container(OmegaConf.load(YAML)) == OmegaConf.to_container(
        OmegaConf.structured(PopulationSpec))


def test_every_yaml_value_has_a_comment():
    # numbers carry a unit and a source or "assumption: why"; dist names are identifiers
    for i, line in enumerate(YAML.read_text().splitlines(), 1):
        m = re.match(r"^\s*([a-z_0-9]+):\s*([^\s#][^#]*)", line)
        if m and m.group(1) != "dist":
            assert "#" in line, f"{YAML.name}:{i}: {line}"


def test_covariate_fields_point_at_scenario_fields():
    s = Scenario()
    for name, f in COVARIATE_FIELDS.items():
        section, fld = f.key.split(".")
        assert isinstance(getattr(getattr(s, section), fld), float), name
        assert f.units and f.long_name


def test_plain_dict_covariates_are_converted():
    spec = PopulationSpec(covariates={"weight_kg": {"dist": "normal", "value": 70.0, "sd": 10.0}},
                          covariate_correlation=[])
    assert spec.covariates["weight_kg"] == Covariate("normal", 70.0, 10.0)


C = "population.covariates"


@pytest.mark.parametrize(("kw", "needles"), [
    (dict(n=0), ["population.n=0", "positive integer"]),
    (dict(n=2.5), ["population.n=2.5"]),
    (dict(covariates={"weight": Covariate("fixed", 70.0)}),
     [f"{C}='weight'", "weight_kg", "em_volume_cm3"]),
    (dict(covariates={"weight_kg": Covariate("gamma", 70.0)}),
     [f"{C}.weight_kg.dist='gamma'", "fixed, normal, lognormal, uniform"]),
    (dict(covariates={"weight_kg": Covariate("normal", 70.0, -1.0)}),
     [f"{C}.weight_kg.sd=-1.0", "> 0"]),
    (dict(covariates={"weight_kg": Covariate("normal", 70.0)}),
     [f"{C}.weight_kg.sd=None", "dist=normal needs it"]),
    (dict(covariates={"weight_kg": Covariate("normal", None, 5.0)}),
     [f"{C}.weight_kg.value=None"]),
    (dict(covariates={"weight_kg": Covariate("fixed", 70.0, 5.0)}),
     [f"{C}.weight_kg.sd=5.0", "null", "not used by dist=fixed"]),
    (dict(covariates={"weight_kg": Covariate("fixed", 70.0, None, 80.0)}),
     [f"{C}.weight_kg.value=70.0", "within [80.0, None]"]),
    (dict(covariates={"weight_kg": Covariate("uniform", 70.0, None, 50.0, 90.0)}),
     [f"{C}.weight_kg.value=70.0", "not used by dist=uniform"]),
    (dict(covariates={"weight_kg": Covariate("uniform", None, None, 50.0)}),
     [f"{C}.weight_kg.upper=None"]),
    (dict(covariates={"weight_kg": Covariate("normal", 70.0, 5.0, 90.0, 80.0)}),
     [f"{C}.weight_kg.upper=80.0", "> lower (90.0)"]),
    (dict(covariates={"weight_kg": Covariate("lognormal", -70.0, 0.2)}),
     [f"{C}.weight_kg.value=-70.0", "median > 0"]),
    (dict(covariates={"weight_kg": Covariate("lognormal", 70.0, 0.2, -1.0)}),
     [f"{C}.weight_kg.lower=-1.0", ">= 0"]),
    (dict(covariates={"weight_kg": Covariate("normal", float("nan"), 1.0)}),
     [f"{C}.weight_kg.value=nan", "finite number"]),
    (dict(covariates={"weight_kg": Covariate("normal", 70.0, 1.0, 80.0, 81.0)}),
     [f"{C}.weight_kg: bounds [80.0, 81.0]", "widen"]),
])
def test_bad_covariates_name_the_key(kw, needles):
    kw = {"covariate_correlation": [], **kw}
    with pytest.raises(ScenarioError) as err:
        PopulationSpec(**kw)
    for needle in needles:
        assert needle in str(err.value)


K = "population.covariate_correlation[0]"
R = "population.random_effect_correlation"


@pytest.mark.parametrize(("kw", "needles"), [
    (dict(covariate_correlation=[["weight_kg", "height"]]), [K, "[name1, name2, rho]"]),
    (dict(covariate_correlation=[["weight_kg", "heigth_cm", 0.5]]), [K, "'heigth_cm'"]),
    (dict(covariate_correlation=[["weight_kg", "weight_kg", 0.5]]), [K, "two different"]),
    (dict(covariate_correlation=[["weight_kg", "height_cm", 1.0]]), [K, "between -1 and 1"]),
    (dict(covariate_correlation=[["weight_kg", "height_cm", 0.5], ["height_cm", "weight_kg", 0.1]]),
     ["population.covariate_correlation[1]", "repeated"]),
    (dict(covariate_correlation=[["weight_kg", "lymphocytes_per_ul", 0.5]],
          covariates={**PopulationSpec().covariates,
                      "lymphocytes_per_ul": Covariate("fixed", 800.0)}),
     [K, "lymphocytes_per_ul has dist=fixed"]),
    (dict(covariate_correlation=[["weight_kg", "height_cm", 0.9], ["height_cm", "crcl_ml_min", 0.9],
                                 ["weight_kg", "crcl_ml_min", -0.9]]),
     ["population.covariate_correlation=", "positive definite"]),
    (dict(em_probability=1.5), ["population.em_probability=1.5", "[0, 1]"]),
    (dict(random_effects={"rho_max": -0.1}), ["population.random_effects.rho_max=-0.1", ">= 0"]),
    (dict(random_effect_correlation=[["rho_max", "k_ex", 0.3]]),
     [f"{R}[0]", "'k_ex' is not one of them"]),
    (dict(random_effect_correlation=[["rho_max", "delta_e", 0.9], ["delta_e", "delta_m", 0.9],
                                     ["rho_max", "delta_m", -0.9]]),
     [f"{R}=", "positive definite"]),
])
def test_bad_correlations_and_probabilities_name_the_key(kw, needles):
    with pytest.raises(ScenarioError) as err:
        PopulationSpec(**kw)
    for needle in needles:
        assert needle in str(err.value)


def test_errors_through_the_config_path_name_the_dotted_key():
    with pytest.raises(ScenarioError, match=r"population\.covariates\.weight_kg\.sd=-0\.2"):
        _from_yaml({"covariates": {"weight_kg": {"sd": -0.2}}})
    spec = _from_yaml({"covariates": {"crcl_ml_min": {"dist": "fixed", "value": 60.0,
                                                      "sd": None, "lower": None, "upper": None}},
                       "n": 7})
    assert spec.n == 7 and spec.covariates["crcl_ml_min"] == Covariate("fixed", 60.0)
