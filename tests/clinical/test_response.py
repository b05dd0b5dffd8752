"""Marrow response, MRD, relapse, progression and extramedullary response on known trajectories."""

import numpy as np
import pytest

from cartsim.clinical import endpoints

T = np.arange(-5.0, 181.0)


def blasts_v(day_below, day_back, low=0.001, high=30.0):
    """40% blasts, < 5% (``low``) from ``day_below`` on, back to ``high`` from ``day_back`` on."""
    return np.where(T < day_below, 40.0, np.where(T < day_back, low, high))


def test_remission_then_relapse_days_and_cd7_status(make_ds, no_death):
    b = np.stack([blasts_v(12, 120), blasts_v(12, 120)])
    cd7neg = np.stack([np.where(T >= 100, 80.0, 0.0), np.where(T >= 100, 50.0, 0.0)])
    e = endpoints(make_ds(2, marrow_blast_pct=b, blast_cd7neg_pct=cd7neg), no_death)
    assert e.response_day.values.tolist() == [12.0, 12.0]
    assert e.relapse.values.tolist() == [True, True]
    assert e.relapse_day.values.tolist() == [120.0, 120.0]
    assert e.relapse_cd7neg.values.tolist() == [True, False]  # > 50% is CD7-negative; 50% is not
    assert not e.progression.any()
    assert e.pfs_day.values.tolist() == [120.0, 120.0] and e.pfs_event.all()
    assert e.dor_day.values.tolist() == [108.0, 108.0] and e.dor_event.all()
    assert e.os_day.values.tolist() == [180.0, 180.0] and not e.os_event.any()


def test_remission_boundary_is_strict(make_ds, no_death):
    b = np.stack([np.where(T >= 10, 5.0, 40.0), np.where(T >= 10, 4.999, 40.0)])
    e = endpoints(make_ds(2, marrow_blast_pct=b), no_death)
    assert e.best_response.values.tolist() == [0, 2]
    assert np.isnan(e.response_day.values[0]) and e.response_day.values[1] == 10.0


def test_cr_versus_cri_by_anc_at_day_28(make_ds, no_death):
    anc = np.stack([np.where((T > 0) & (T < 40), 999.0, 2500.0),
                    np.where((T > 0) & (T < 20), 999.0, 1000.0)])
    e = endpoints(make_ds(2, marrow_blast_pct=blasts_v(14, 999), anc_per_ul=anc), no_death)
    assert e.response_d28.values.tolist() == [1, 2]  # CRi with ANC 999, CR at ANC 1000
    assert e.best_response.values.tolist() == [2, 2]  # count recovery by day 91 in both
    assert e.response_d28.attrs["flag_values"].tolist() == [-1, 0, 1, 2]


def test_no_response_at_day_28_when_remission_comes_later(make_ds, no_death):
    e = endpoints(make_ds(marrow_blast_pct=blasts_v(35, 999)), no_death).isel(patient=0)
    assert int(e.response_d28) == 0 and int(e.best_response) == 2
    assert float(e.response_day) == 35.0


def test_best_response_only_within_the_window(make_ds, no_death):
    e = endpoints(make_ds(marrow_blast_pct=blasts_v(95, 999)), no_death).isel(patient=0)
    assert int(e.best_response) == 0 and np.isnan(float(e.response_day))


@pytest.mark.parametrize("pct, flow, mol", [
    (0.01, False, False),     # fraction 1e-4: not < 1e-4
    (0.0099, True, False),    # 9.9e-5
    (0.001, True, False),     # 1e-5: not < 1e-5
    (0.00099, True, True),    # 9.9e-6
])
def test_mrd_thresholds_at_the_boundaries(make_ds, no_death, pct, flow, mol):
    e = endpoints(make_ds(marrow_blast_pct=blasts_v(10, 999, low=pct)), no_death).isel(patient=0)
    assert bool(e.mrd_flow_neg_d28) is flow and bool(e.mrd_flow_neg_m3) is flow
    assert bool(e.mrd_mol_neg_d28) is mol and bool(e.mrd_mol_neg_m3) is mol
    assert bool(e.best_mrd_flow_neg) is flow and bool(e.best_mrd_mol_neg) is mol


def test_mrd_at_month_3_uses_day_91(make_ds, no_death):
    b = np.where(T < 10, 40.0, np.where(T < 91, 1e-4, 0.5))
    e = endpoints(make_ds(marrow_blast_pct=b), no_death).isel(patient=0)
    assert bool(e.mrd_flow_neg_d28) and not bool(e.mrd_flow_neg_m3)
    assert not bool(e.relapse)  # 0.5% is still a morphological remission


def test_progression_of_a_non_responder(make_ds, no_death):
    # nadir 20% on day 10, then +1%/day: 1.25 x 20 = 25% reached on day 15
    b = np.where(T <= 10, 40.0 - 2.0 * np.maximum(T, 0.0), 20.0 + (T - 10.0))
    e = endpoints(make_ds(marrow_blast_pct=b), no_death).isel(patient=0)
    assert bool(e.progression) and float(e.progression_day) == 15.0
    assert not bool(e.relapse) and float(e.pfs_day) == 15.0 and bool(e.pfs_event)
    assert np.isnan(float(e.dor_day)) and not bool(e.dor_event)


def test_stable_refractory_disease_is_censored(make_ds, no_death):
    e = endpoints(make_ds(), no_death).isel(patient=0)
    assert not bool(e.progression) and not bool(e.pfs_event) and float(e.pfs_day) == 180.0


def em_case(v0, v_after, day=20.0, v_late=None, day_late=60.0):
    v = np.where(T < day, v0, v_after)
    return v if v_late is None else np.where(T < day_late, v, v_late)


def test_extramedullary_lugano_volume_boundaries(make_ds, no_death):
    v0 = 100.0
    pr, pd, cr = no_death.em_pr_volume_ratio, no_death.em_pd_volume_ratio, no_death.em_cr_volume_cm3
    cases = {  # volume trajectory: expected code (0 none, 1 CR, 2 PR, 3 SD, 4 PD)
        "no disease": (np.zeros_like(T), 0),
        "CR at the 1.5-cm sphere": (em_case(v0, cr), 1),
        "just above CR, PR": (em_case(v0, cr * (1 + 1e-9)), 2),
        "PR at 0.5^1.5": (em_case(v0, pr * v0), 2),
        "just above PR, SD": (em_case(v0, pr * v0 * (1 + 1e-9)), 3),
        "PD at 1.5^1.5": (em_case(v0, pd * v0), 4),
        "just below PD, SD": (em_case(v0, pd * v0 * (1 - 1e-9)), 3),
        "PR then PD stays PR": (em_case(v0, 20.0, v_late=200.0), 2),
        "PD from the nadir": (em_case(v0, 60.0, v_late=60.0 * pd), 4),
        "SD after the window ignored": (em_case(v0, v0, v_late=v0 * 10, day_late=100.0), 3),
    }
    vols = np.stack([v for v, _ in cases.values()])
    e = endpoints(make_ds(len(cases), em_volume_cm3=vols), no_death)
    assert dict(zip(cases, e.em_best_response.values.tolist())) == {
        k: code for k, (_, code) in cases.items()}
    assert e.em_present.values.tolist() == [False] + [True] * (len(cases) - 1)
