"""Sweep and sensitivity options: every kind of bad input is an error naming the key."""

import dataclasses
import re

import pytest

from cartsim.config import load_run_config
from cartsim.scenario import Scenario, ScenarioError
from cartsim.sweep import SensitivityOptions, SweepAxis, SweepSpec
from cartsim.sweep.axes import FIELD_UNITS, SECTIONS, resolve_axes
from cartsim.sweep.endpoints import DERIVED, available_endpoints, check_endpoints


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"method": "random"}, "sweep.method"),
    ({"n_samples": 5}, "sweep.n_samples"),
    ({"method": "lhs", "n_samples": 0, "axes": [SweepAxis("patient.weight_kg",
                                                          space="linspace", start=50,
                                                          stop=80)]}, "sweep.n_samples"),
    ({"method": "sobol", "n_samples": 8}, "sweep.axes"),
    ({"population_n": -1}, "sweep.population_n"),
    ({"chunk_size": 0}, "sweep.chunk_size"),
    ({"endpoints": []}, "sweep.endpoints"),
    ({"endpoints": ["cr_d28", "cr_d28"]}, "sweep.endpoints"),
    ({"ci_level": 1.0}, "sweep.ci_level"),
    ({"resume_dir": " "}, "sweep.resume_dir"),
    ({"name": "a/b"}, "sweep.name"),
    ({"axes": [SweepAxis("regimen.car_dose_per_kg")]}, "sweep.axes[0].values"),
    ({"axes": [SweepAxis("regimen.car_dose_per_kg", values=[1e5, 1e5])]},
     "sweep.axes[0].values"),
    ({"axes": [SweepAxis("regimen.car_dose_per_kg", space="logspace", start=0, stop=1e6,
                         num=3)]}, "sweep.axes[0].start"),
    ({"axes": [SweepAxis("regimen.car_dose_per_kg", space="linspace", start=1, stop=2)]},
     "sweep.axes[0].num"),
    ({"axes": [SweepAxis("regimen.car_dose_per_kg", space="cubic", start=1, stop=2,
                         num=2)]}, "sweep.axes[0].space"),
    ({"axes": [SweepAxis("regimen.car_dose_per_kg", values=[1.0], num=3)]},
     "sweep.axes[0].num"),
    ({"axes": [SweepAxis("", values=[1.0])]}, "sweep.axes[0].name"),
    ({"axes": [SweepAxis("patient.weight_kg", values=[60.0]),
               SweepAxis("patient.weight_kg", values=[70.0])]}, "sweep.axes"),
    ({"method": "lhs", "n_samples": 4, "axes": [SweepAxis("patient.weight_kg",
                                                          values=[60.0, 70.0])]},
     "sweep.axes[0].space"),
])
def test_bad_sweep_spec_names_the_key(kwargs, key):
    with pytest.raises(ScenarioError, match="^" + re.escape(key) + "="):
        SweepSpec(**kwargs)


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"method": "fast"}, "sensitivity.method"),
    ({"n_base": 48}, "sensitivity.n_base"),
    ({"num_levels": 3, "method": "morris"}, "sensitivity.num_levels"),
    ({"endpoints": []}, "sensitivity.endpoints"),
    ({"conf_level": 0.0}, "sensitivity.conf_level"),
    ({"parameters": [SweepAxis("model.params.k_kill", values=[1.0])]},
     "sensitivity.parameters[0].space"),
])
def test_bad_sensitivity_options_name_the_key(kwargs, key):
    with pytest.raises(ScenarioError, match="^" + re.escape(key) + "="):
        SensitivityOptions(**kwargs)


def test_unknown_axis_name_lists_what_is_accepted():
    with pytest.raises(ScenarioError, match=r"sweep.axes\[0\].name='regimen.car_dose'.*"
                                            r"regimen.car_dose_per_kg.*model.params"):
        resolve_axes([SweepAxis("regimen.car_dose", values=[1.0])], Scenario())
    with pytest.raises(ScenarioError, match="'k_kil' is not a parameter of model 'cd7'; "
                                            "accepted: .*k_kill"):
        resolve_axes([SweepAxis("model.params.k_kil", values=[1.0])], Scenario())


def test_group_and_string_axes_cannot_be_sampled():
    with pytest.raises(ScenarioError, match="config group"):
        resolve_axes([SweepAxis("product", space="linspace", start=0, stop=1)], Scenario(),
                     numeric=True)
    with pytest.raises(ScenarioError, match="numeric"):
        resolve_axes([SweepAxis("regimen.hsct_criterion", space="linspace", start=0,
                                stop=1)], Scenario(), numeric=True)


def test_every_scalar_scenario_field_has_units():
    # the sweepable fields (with units for the coordinates) follow the schema
    scalar = set()
    for section in SECTIONS:
        obj = getattr(Scenario(), section)
        for f in dataclasses.fields(obj):
            if not isinstance(getattr(obj, f.name), list):
                scalar.add(f"{section}.{f.name}")
    assert scalar == set(FIELD_UNITS)


def test_unknown_endpoint_lists_the_accepted_ones():
    assert set(DERIVED) <= set(available_endpoints())
    assert {"cmax_qpcr", "crs_grade", "pfs_day"} <= set(available_endpoints())
    with pytest.raises(ScenarioError, match="unknown endpoint.*cr_day28.*accepted: .*cr_d28"):
        check_endpoints(["cr_day28"])


@pytest.mark.parametrize("overrides", [
    ["sweep=dose_vs_burden"], ["sweep=window"], ["sweep=fratricide_lhs"],
    ["sensitivity=default"]])
def test_shipped_configs_compose(overrides):
    cfg = load_run_config(overrides)
    assert isinstance(cfg.sweep, SweepSpec) and isinstance(cfg.sensitivity, SensitivityOptions)
    resolve_axes(cfg.sweep.axes, cfg.scenario(), numeric=cfg.sweep.method != "grid")
    resolve_axes(cfg.sensitivity.parameters, cfg.scenario(), numeric=True)
    check_endpoints(cfg.sweep.endpoints)
    check_endpoints(cfg.sensitivity.endpoints)


def test_override_typo_in_an_axis_is_a_composition_error():
    from cartsim.config import ConfigError

    with pytest.raises(ConfigError):
        load_run_config(["sweep=dose_vs_burden", "sweep.axes.0.nmae=x"])
