"""Consolidative allo-HSCT and CAR-T re-infusion (``Regimen.hsct_day``, ``reinfusion_days``)."""

import numpy as np
import pytest

import cartsim
from cartsim import OutputOptions, Patient, Regimen, Scenario
from cartsim.parameters.cd7 import CD7_HSCT, CD7_PHYSIOLOGY

OUT = OutputOptions(t_end=120.0)


@pytest.fixture(scope="module")
def runs():
    base = Scenario(output=OUT)
    hsct = Scenario(output=OUT, regimen=Regimen(hsct_day=60.0, hsct_criterion="all"))
    # no CAR-T cells: 90% marrow blasts persist to day 60, so no MRD-negative CR
    refractory = Scenario(output=OUT, patient=Patient(marrow_blast_pct=90.0),
                          regimen=Regimen(car_dose_per_kg=0.0, hsct_day=60.0))
    reinf = Scenario(output=OUT, regimen=Regimen(reinfusion_days=[90.0],
                                                 reinfusion_dose_per_kg=5e7))
    return cartsim.simulate([base, hsct, refractory, reinf])


def test_conditioning_log_kill_and_graft(runs):
    assert (runs.status.values == 0).all()
    np.testing.assert_array_equal(np.isnan(runs.hsct_day.values), [True, False, True, True])
    assert runs.hsct_day.values[1] == 60.0
    before = runs.isel(patient=0).sel(time=60.0)  # same history up to the transplant
    after = runs.isel(patient=1).sel(time=60.0)   # right-continuous: state after it
    kill = 10.0 ** -CD7_HSCT["hsct_blast_log10_kill"].value
    for v in ("blast_cd7pos", "blast_cd7neg"):
        np.testing.assert_allclose(after[v], before[v] * kill, rtol=1e-5)
    assert after.car_total.item() == 0.0  # eliminated (below one cell reports 0)
    graft = CD7_HSCT["hsct_graft_t_per_kg"].value * 70.0
    t_surv = CD7_HSCT["hsct_t_survival"].value
    cd7neg = CD7_PHYSIOLOGY["cd7neg_t_frac"].value
    np.testing.assert_allclose(after.t_cd7pos, before.t_cd7pos * t_surv + graft * (1 - cd7neg),
                               rtol=1e-5)
    np.testing.assert_allclose(after.myeloid_precursor, before.myeloid_precursor
                               * CD7_HSCT["hsct_myeloid_survival"].value, rtol=1e-5)
    # conditioning aplasia: neutrophils fall below 500/uL afterwards, then recover
    anc = runs.anc_per_ul.isel(patient=1).sel(time=slice(60, 120)).values
    assert anc.min() < 500.0 and anc[-1] > 1000.0


def test_criterion_excludes_patients_with_residual_disease(runs):
    pat = runs.isel(patient=2)
    assert pat.marrow_blast_pct.sel(time=60.0).item() > 1e-2  # well above flow MRD (1e-4)


def test_reinfusion_adds_the_dose(runs):
    base, reinf = runs.isel(patient=0), runs.isel(patient=3)
    np.testing.assert_allclose(reinf.car_total.sel(time=89.0), base.car_total.sel(time=89.0),
                               rtol=1e-5)
    jump = reinf.car_total.sel(time=90.0) - base.car_total.sel(time=90.0)
    np.testing.assert_allclose(jump, 5e7 * 70.0, rtol=1e-4)


def test_bad_intervention_input():
    with pytest.raises(cartsim.ScenarioError, match="regimen.hsct_criterion"):
        Regimen(hsct_criterion="mrd")
    with pytest.raises(cartsim.ScenarioError, match="regimen.hsct_day"):
        Regimen(hsct_day=-3.0)
    with pytest.raises(cartsim.ScenarioError, match="regimen.reinfusion_days"):
        Regimen(reinfusion_days=[0.0])
    with pytest.raises(cartsim.ScenarioError, match="regimen.reinfusion_dose_per_kg"):
        Regimen(reinfusion_dose_per_kg=-1.0)


def test_transplant_without_conditioning_keeps_car_t_and_gvl_controls_cd7neg_blasts():
    """Hu 2024 (N Engl J Med 390:1467): donor-derived CAR-T then haplo-HSCT without
    conditioning. Without conditioning the CAR-T cells and blasts are not killed on the
    transplant day; graft-versus-leukemia then lowers the blasts of either CD7 phenotype
    at exactly ``hsct_gvl_per_day`` more than without a transplant (same trajectory up
    to that day)."""
    pat = Patient(marrow_blast_pct=40.0, cd7neg_blast_fraction=1e-3)
    out = OutputOptions(t_end=90.0)
    base = dict(car_dose_per_kg=2e6, hsct_criterion="all")
    no_tx = Scenario(patient=pat, output=out, regimen=Regimen(**base))
    tx = Scenario(patient=pat, output=out,
                  regimen=Regimen(**base, hsct_day=30.0, hsct_conditioning=False))
    ds = cartsim.simulate([no_tx, tx])
    car = ds["car_total"].sel(time=[29.0, 31.0]).values
    assert car[1, 1] > 0.5 * car[0, 1]  # no ablation of the CAR-T cells
    b0 = ds["blast_cd7neg"].sel(time=[30.0, 40.0]).values
    gvl = CD7_HSCT["hsct_gvl_per_day"].value
    # ln B0 falls by gvl * 10 days more with the transplant (B0 is far below capacity)
    drop = np.log(b0[0, 1] / b0[0, 0]) - np.log(b0[1, 1] / b0[1, 0])
    assert drop == pytest.approx(gvl * 10.0, rel=0.02)
