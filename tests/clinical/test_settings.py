"""EndpointSettings: YAML mirrors the defaults with units/sources; values are validated."""

import dataclasses
import math
import re
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from cartsim.clinical import DeathModel, EndpointSettings
from cartsim.clinical.settings import assessment_day
from cartsim.scenario import ScenarioError

YAML = Path(__file__).resolve().parents[2] / "conf" / "endpoints" / "default.yaml"


def test_yaml_equals_dataclass_defaults():
    assert yaml.safe_load(YAML.read_text()) == EndpointSettings().to_dict()


def test_yaml_lines_carry_unit_and_source():
    for line in YAML.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#") or re.match(r"\s*\w+:\s*(#|$)", line):
            continue  # blank, comment, or a section header (death:)
        assert "#" in line, f"no comment on {line!r}"
        comment = line.split("#", 1)[1]
        assert re.search(r"\b(day|%|-|cells/uL|copies/ug|cm3|pg/mL|1/day)", comment), line
        assert re.search(r"assumption|et al\.|CTCAE|NCCN|Cheson|\d{4}", comment), line


@pytest.mark.parametrize("cls", [EndpointSettings, DeathModel])
def test_every_field_documented(cls):
    for f in dataclasses.fields(cls):
        assert f.name in cls.__doc__, f.name


def test_lugano_volume_criteria_are_the_sphere_conversions():
    s = EndpointSettings()
    assert s.em_cr_volume_cm3 == pytest.approx(math.pi / 6 * 1.5**3, rel=1e-15)
    assert s.em_pr_volume_ratio == pytest.approx(0.5**1.5, rel=1e-15)
    assert s.em_pd_volume_ratio == pytest.approx(1.5**1.5, rel=1e-15)


def test_assessment_days():
    assert (assessment_day(1), assessment_day(3), assessment_day(6)) == (30.0, 91.0, 183.0)


@pytest.mark.parametrize("kwargs, key", [
    ({"lloq_copies_per_ug": 0.0}, "endpoints.lloq_copies_per_ug"),
    ({"mrd_flow": 2.0}, "endpoints.mrd_flow"),
    ({"remission_blast_pct": float("nan")}, "endpoints.remission_blast_pct"),
    ({"em_pr_volume_ratio": 1.0}, "endpoints.em_pr_volume_ratio"),
    ({"neutropenia_g4_per_ul": 2000.0}, "endpoints.neutropenia_g4_per_ul"),
    ({"crs_il6_thresholds_pg_ml": [35.0, 20.0, 1000.0, 4000.0]},
     "endpoints.crs_il6_thresholds_pg_ml"),
    ({"icans_ifng_thresholds_pg_ml": [1.0, 2.0, 3.0]}, "endpoints.icans_ifng_thresholds_pg_ml"),
    ({"death": {"trm_1y": 1.0}}, "endpoints.death.trm_1y"),
    ({"death": {"leukemia_hazard_max_per_day": -1.0}},
     "endpoints.death.leukemia_hazard_max_per_day"),
    ({"death": {"typo": 1.0}}, "endpoints.death.typo"),
])
def test_bad_values_name_the_dotted_key(kwargs, key):
    with pytest.raises(ScenarioError, match=re.escape(key)):
        EndpointSettings(**kwargs)


def test_from_dict_round_trip_and_unknown_key():
    s = EndpointSettings(remission_blast_pct=4.0, death=DeathModel(trm_1y=0.1))
    assert EndpointSettings.from_dict(yaml.safe_load(yaml.safe_dump(s.to_dict()))) == s
    with pytest.raises(ScenarioError, match="endpoints.lloq=.*accepted keys"):
        EndpointSettings.from_dict({"lloq": 1.0})


def test_hydra_structured_config_types_and_values():
    merged = OmegaConf.merge(OmegaConf.structured(EndpointSettings),
                             OmegaConf.create(YAML.read_text()))
    assert OmegaConf.to_object(merged) == EndpointSettings()
    with pytest.raises(Exception, match="lloq_copies_per_ug"):
        OmegaConf.merge(OmegaConf.structured(EndpointSettings), {"lloq_copies_per_ug": "abc"})
    bad = OmegaConf.merge(OmegaConf.structured(EndpointSettings), {"death": {"trm_1y": 2.0}})
    with pytest.raises(ScenarioError, match="endpoints.death.trm_1y"):
        OmegaConf.to_object(bad)
