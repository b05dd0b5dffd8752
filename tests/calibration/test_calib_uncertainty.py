"""A trial over the calibration ensemble: overrides land where they belong; both intervals."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cartsim import OutputOptions, Scenario
from cartsim.calibration.ensemble import read_ensemble
from cartsim.clinical import EndpointSettings
from cartsim.population import PopulationSpec
from cartsim.trial import (
    apply_overrides,
    member_overrides,
    read_members,
    run_trial,
    trial_with_ensemble,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "experiments" / "calibration_results" / "ensemble.csv"


def test_overrides_land_on_the_typed_objects():
    sc, pop, st = apply_overrides(Scenario(), PopulationSpec(), EndpointSettings(), {
        "+model.params.rho_max": 0.5, "disease.em_access": 0.3,
        "population.poor_expander_probability": 0.25,
        "endpoints.death.aplasia_hazard_per_day": 1e-3, "regimen.car_dose_per_kg": 2e6})
    assert sc.model.params["rho_max"] == 0.5 and sc.disease.em_access == 0.3
    assert sc.regimen.car_dose_per_kg == 2e6
    assert pop.poor_expander_probability == 0.25
    assert st.death.aplasia_hazard_per_day == 1e-3
    assert Scenario().model.params == {}  # the originals are untouched
    with pytest.raises(ValueError, match="ensemble key 'disease.no_such_field'"):
        apply_overrides(Scenario(), PopulationSpec(), EndpointSettings(),
                        {"disease.no_such_field": 1.0})
    with pytest.raises(ValueError, match="ensemble key 'foo.bar'"):
        apply_overrides(Scenario(), PopulationSpec(), EndpointSettings(), {"foo.bar": 1.0})


def test_every_key_of_the_shipped_ensemble_applies():
    members, prov = read_ensemble(SHIPPED)
    assert len(members) >= 1 and "created" in prov
    # the trial task's own reader sees the same members, most likely first
    pd.testing.assert_frame_equal(read_members(SHIPPED), members)
    over = member_overrides(members.iloc[0])
    assert "+model.params.rho_max" in over and "id" not in over
    sc, pop, st = apply_overrides(Scenario(), PopulationSpec(), EndpointSettings(), over)
    assert sc.model.params["rho_max"] == pytest.approx(over["+model.params.rho_max"])


def test_model_range_spans_the_members_and_defaults_are_unchanged():
    base = Scenario(output=OutputOptions(t_end=40.0))
    pop = dataclasses.replace(PopulationSpec(), n=8)
    members = pd.DataFrame({"id": [1, 2], "+model.params.rho_max": [0.45, 1.1]})
    result, rows = trial_with_ensemble(base, pop, EndpointSettings(), members, k=2, seed=3)
    plain = run_trial(base, pop, EndpointSettings(), seed=3)
    np.testing.assert_array_equal(result.endpoints["cmax_qpcr"].values,
                                  plain.endpoints["cmax_qpcr"].values)
    cmax = next(r for r in rows if r["endpoint"].startswith("Cmax, qPCR"))
    lo_member = run_trial(dataclasses.replace(base, model=dataclasses.replace(
        base.model, params={"rho_max": 0.45})), pop, EndpointSettings(), seed=3)
    expect_lo = float(np.nanmedian(lo_member.endpoints["cmax_qpcr"].values))
    assert cmax["k"] == 2 and cmax["model_lo"] == pytest.approx(expect_lo, rel=1e-9)
    assert cmax["model_hi"] > cmax["model_lo"]  # a faster expansion peaks higher
    with pytest.raises(ValueError, match="ensemble_members=0"):
        trial_with_ensemble(base, pop, EndpointSettings(), members, k=0)


def test_the_table_says_how_many_distinct_parameter_sets_carry_the_model_range(tmp_path):
    """A posterior resample repeats heavy draws: 3 members that are 2 distinct draws of a
    sample with ESS 1.7 must be reported as such, with the warning; the provenance is read
    from the file's '# ' lines as the calibration wrote them."""
    from cartsim.calibration.ensemble import write_ensemble
    from cartsim.reporting.files import format_uncertainty

    path = write_ensemble(pd.DataFrame({"id": [7, 9, 7], "+model.params.rho_max":
                                        [0.6, 0.7, 0.6]}), tmp_path / "e.csv",
                          {"effective_sample_size": 1.7})
    members = read_members(path)
    assert members.attrs["provenance"]["effective_sample_size"] == 1.7
    base = Scenario(output=OutputOptions(t_end=20.0))
    pop = dataclasses.replace(PopulationSpec(), n=3)
    _, rows = trial_with_ensemble(base, pop, EndpointSettings(), members, k=3, seed=1)
    assert rows[0]["distinct"] == 2 and rows[0]["ess"] == 1.7
    text = format_uncertainty(rows)
    assert "3 members are 2 distinct parameter sets" in text and "understates" in text
    _, rows2 = trial_with_ensemble(base, pop, EndpointSettings(), members.iloc[:2], k=2, seed=1)
    assert rows2[0]["distinct"] == 2 and "understates" in format_uncertainty(rows2)  # ESS 1.7 < 2


def test_trial_task_writes_the_uncertainty_table(tmp_path):
    cmd = [sys.executable, "-m", "cartsim.cli", "task=trial", "population.n=6",
           "output.t_end=30", f"trial.ensemble={SHIPPED}", "trial.ensemble_members=2",
           f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "model range (2 ensemble members)" in proc.stdout
    table = pd.read_csv(tmp_path / "trial_summary_uncertainty.csv")
    assert {"cohort_lo", "cohort_hi", "model_lo", "model_hi"} <= set(table.columns)
    bad = subprocess.run([*cmd[:-3], "trial.ensemble=no_such_file.csv"], capture_output=True,
                         text=True, timeout=600, cwd=ROOT)
    assert bad.returncode == 2 and "trial.ensemble='no_such_file.csv' is not accepted" in (
        bad.stderr + bad.stdout)


def test_members_leave_what_the_run_sets_alone():
    """As in the calibration (an experiment that sets a key keeps it), a member's T-ALL
    growth rate does not overwrite the growth rate of disease=cd7_aml, nor a dose the user
    chose; keys at their shipped value take the member's."""
    from cartsim.config import load_run_config
    from cartsim.trial import pinned_keys, read_override

    default = load_run_config()
    d = (default.scenario(), default.population, default.endpoints)
    aml = load_run_config(["disease=cd7_aml", "regimen.car_dose_per_kg=3e6"])
    a = (aml.scenario(), aml.population, aml.endpoints)
    keys = ["disease.blast_growth_per_day", "regimen.car_dose_per_kg",
            "+model.params.rho_max", "population.poor_expander_probability"]
    aml_growth = aml.scenario().disease.blast_growth_per_day
    assert read_override(*a, "disease.blast_growth_per_day") == aml_growth
    assert pinned_keys(a, d, keys) == {"disease.blast_growth_per_day", "regimen.car_dose_per_kg"}
    assert pinned_keys(d, d, keys) == set()
    members = pd.DataFrame({"id": [1], "disease.blast_growth_per_day": [0.5],
                            "+model.params.rho_max": [0.6]})
    sc = dataclasses.replace(a[0], output=OutputOptions(t_end=20.0))
    pop = dataclasses.replace(a[1], n=3)
    _, rows = trial_with_ensemble(sc, pop, a[2], members, k=1, seed=1, defaults=d)
    assert rows[0]["pinned"] == ["disease.blast_growth_per_day"]
