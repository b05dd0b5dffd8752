"""The mechanisms the CD7 CAR-T trials show, checked on small seeded virtual cohorts.

Each test states the clinical fact it checks (science/targets.md) and compares paired
cohorts (the same drawn patients under two settings: common random numbers), so a
difference is the mechanism, not sampling noise. Thresholds are binomial or
order-of-magnitude statements, not the calibrated values themselves.
"""

from __future__ import annotations

import numpy as np
import pytest

import cartsim
from cartsim.config import load_run_config
from cartsim.trial import run_trial

N = 300


def _trial(overrides, n=N, seed=11):
    cfg = load_run_config([f"population.n={n}", f"seed={seed}", *overrides])
    return run_trial(cfg.scenario(), cfg.population, cfg.endpoints, seed=seed,
                     options=cfg.trial).endpoints


HIGH_BURDEN = ["population.covariates.marrow_blast_pct.value=70",
               "population.covariates.marrow_blast_pct.sd=0.4",
               "population.covariates.marrow_blast_pct.lower=20", "output.t_end=60"]


@pytest.fixture(scope="module")
def dose_cohorts():
    return {d: _trial([*HIGH_BURDEN, f"regimen.car_dose_per_kg={d}"]) for d in (1e5, 1e6, 1e7)}


def test_dose_raises_severe_crs_in_a_high_burden_cohort(dose_cohorts):
    """GC027 (Leukemia 2023;37:2176): CRS >= 3 in 5/5 at 0.6-1.5e7/kg, against 5-10% at
    2.5e5-1e6/kg in NCT05290155, Pan 2021 and Lu 2022; Hay 2017: risk rises with dose and
    burden. The same 300 patients at 1e5, 1e6 and 1e7 cells/kg: the rate rises with dose and
    more patients cross grade 3 at 1e7 than at 1e5 than the other way round (paired). At the
    calibrated values the effect is modest (~+5 points over 100x in a 70%-blast cohort, where
    burden dominates); GC027's 5/5 at 1e7 is a structural miss (README)."""
    severe = {d: np.asarray(ep["crs_grade"].values) >= 3 for d, ep in dose_cohorts.items()}
    rate = {d: float(g.mean()) for d, g in severe.items()}
    assert rate[1e5] < rate[1e6] < rate[1e7], rate
    # paired (McNemar): the same patients, so count who crosses grade 3 either way
    up = int((severe[1e7] & ~severe[1e5]).sum())
    down = int((severe[1e5] & ~severe[1e7]).sum())
    assert up - down > 3 * np.sqrt(up + down), (up, down, rate)


def test_a_high_dose_peaks_earlier_but_the_peak_depends_weakly_on_dose(dose_cohorts):
    """EHA P1236: peak not correlated with dose over 8e3-2.4e6/kg; GC027: earlier peak (days
    5-10) at ~1e7/kg. 10x the dose must not give anything near 10x the median peak, and
    1e7/kg must peak days earlier than 1e5/kg (same patients)."""
    cmax = {d: float(np.nanmedian(ep["cmax_qpcr"])) for d, ep in dose_cohorts.items()}
    tmax = {d: float(np.nanmedian(ep["tmax_qpcr"])) for d, ep in dose_cohorts.items()}
    assert cmax[1e6] / cmax[1e5] < 3.0 and cmax[1e7] / cmax[1e6] < 3.0, cmax
    assert cmax[1e7] > cmax[1e5], cmax
    assert tmax[1e7] <= tmax[1e5] - 3.0, tmax


@pytest.fixture(scope="module")
def default_cohort():
    return _trial(["output.t_end=365"])


def test_primary_non_responders_alive_at_day_28_exist(default_cohort):
    """CR/CRi 14/14, 18/20, 19/20 and 11/13 in the trials: a few percent of patients alive at
    day 28 do not respond; they must come from mechanisms (a poor-expander product, blasts
    resistant to killing, CD7-negative blasts), not be absent (~100% response) nor dominate."""
    ep = default_cohort
    alive = ~(ep["death_day"] <= 28).values
    nr = alive & (ep["response_d28"] < 1).values & ep["evaluable"].values
    assert 0.01 < nr.sum() / alive.sum() < 0.25, nr.sum()
    mech = (ep["poor_expander"].values.astype(bool) | ~ep["expansion"].values.astype(bool)
            | (ep["k_kill"].values < np.median(ep["k_kill"].values))
            | (ep["cd7neg_blast_fraction"].values > 1e-3))
    assert mech[nr].mean() > 0.8
    assert mech[nr].mean() > mech[alive].mean()  # enriched among non-responders


def test_no_early_death_without_a_cause(default_cohort):
    """Deaths in the first days after infusion are rare and come from CRS or infection in
    profound neutropenia/aplasia, never from the baseline leukemia burden, whose hazard
    starts on day 14 (the issue: 10 of 1,000 died before day 2 of a burden hazard)."""
    ep = default_cohort
    early = (ep["death_day"] < 3.0).values
    assert early.mean() < 0.01
    assert np.isin(ep["death_mechanism"].values[early], (2, 3)).all()
    leuk = ep["death_mechanism"].values == 1
    assert not (ep["death_day"].values[leuk] < 13.0).any()


def test_cmax_spread_covers_the_published_range():
    """NCT05290155 (n=14): peak 3,176-326,483 copies/ug; a 1,000-patient cohort of the same
    design must span at least that range (the trial's range is a minimum spread)."""
    ep = _trial(["+experiment=trial_nct05290155", "output.t_end=60"], n=1000, seed=3)
    cmax = ep["cmax_qpcr"].values[ep["evaluable"].values]
    assert np.nanmin(cmax) <= 3176.0 and np.nanmax(cmax) >= 326483.0, (cmax.min(), cmax.max())


def test_contraction_once_antigen_is_gone():
    """No trial shows CAR-T cells holding half their peak for a year: once blasts and
    CD7+ T cells are gone, every patient contracts."""
    cfg = load_run_config(["population.n=200", "seed=5"])
    from cartsim.population import draw_cohort

    cohort = draw_cohort(cfg.scenario(), cfg.population, 5)
    ds = cartsim.simulate(cohort.scenarios)
    t = ds["time"].values
    q = ds["car_copies_per_ug"].values
    peak = np.nanmax(np.where(t >= 0, q, 0.0), axis=1)
    late = t >= 180.0
    antigen_gone = ((ds["marrow_blast_pct"].values[:, late] == 0.0).all(axis=1)
                    & (ds["t_cd7pos_per_ul"].values[:, late] < 1.0).all(axis=1))
    assert antigen_gone.sum() > 20
    assert (q[antigen_gone, -1] < 0.5 * peak[antigen_gone]).all()


def test_residual_cd7_changes_expansion_and_persistence():
    """Fratricide scales with CD7 left on CAR-T cells (ns7car 0.10 > nanobody 0.05 > ko
    0.02; Gomes-Silva 2017 Blood 130:285): the same patients' AUC0-28 and month-6
    detectability order the products."""
    eps = {p: _trial([f"product={p}", "output.t_end=200"], n=200) for p in ("ns7car",
                                                                           "nanobody", "ko")}
    auc = {p: float(np.nanmedian(ep["auc28_qpcr"])) for p, ep in eps.items()}
    m6 = {p: float(ep["car_detectable_m6"].mean()) for p, ep in eps.items()}
    assert auc["ns7car"] < auc["nanobody"] < auc["ko"], auc
    assert auc["ko"] / auc["ns7car"] > 1.2, auc
    assert m6["ns7car"] < m6["ko"], m6


def test_allogeneic_product_is_rejected_by_week_four():
    """GC027 (allogeneic, TCR-/CD7-knock-out): peak on days 5-10, undetectable by flow and
    qPCR at 4 weeks in 9/11 responders; the autologous knock-out persists."""
    over = ["regimen.car_dose_per_kg=1e7", "output.t_end=60"]
    allo = _trial(["product=allo_ko", *over], n=200)
    auto = _trial(["product=ko", *over], n=200)
    gone = lambda ep: float((~(ep["persistence_qpcr"] >= 28.0)).mean())  # noqa: E731
    assert gone(allo) > 0.5 > gone(auto), (gone(allo), gone(auto))
    assert 4.0 <= float(np.nanmedian(allo["tmax_qpcr"])) <= 11.0


def test_rejection_waits_for_the_alloresponse_to_grow():
    """A primary alloresponse is a clonal expansion of host T cells that takes 1-2 weeks
    (GC027: the allogeneic product still peaks on days 5-10, like an autologous one, and
    is then rejected). The same patients and product, with and without HLA mismatch: in
    the first 4 days the two are within 25% of each other; by day 21 the mismatched one is
    below a tenth of the matched one in most patients."""
    cfg = load_run_config(["population.n=60", "seed=7", "regimen.car_dose_per_kg=1e7",
                           "output.t_end=30"])
    from cartsim.population import draw_cohort

    cohort = draw_cohort(cfg.scenario(), cfg.population, 7)
    import dataclasses

    def run(allogeneic):
        prod = load_run_config(["product=allo_ko",
                                f"product.allogeneic={allogeneic}"]).scenario().product
        return cartsim.simulate([dataclasses.replace(s, product=prod) for s in cohort.scenarios])

    allo, auto = run("true"), run("false")
    t = allo["time"].values
    a, b = allo["car_total"].values, auto["car_total"].values
    early = (t > 0.5) & (t <= 4.0)
    ratio = a[:, early] / b[:, early]
    assert np.nanmedian(np.abs(ratio - 1.0)) < 0.25, np.nanmedian(ratio)
    d21 = np.searchsorted(t, 21.0)
    assert np.mean(a[:, d21] < 0.1 * b[:, d21]) > 0.5


def test_inflammation_prolongs_neutropenia():
    """Immune effector cell-associated hematotoxicity (Rejeski 2021 Blood 138:2499): the
    same patients have longer grade-4 neutropenia with IFN-gamma myelosuppression than
    without it, the more so the higher their IFN-gamma peak; with no CAR-T cells (no
    inflammation) the mechanism changes nothing."""
    over = ["output.t_end=90"]
    on = _trial(over, n=150)
    off = _trial([*over, "+model.params.emax_ifng_my=0"], n=150)
    d_on = on["neutropenia_g4_days"].values
    d_off = off["neutropenia_g4_days"].values
    assert np.nanmean(d_on) > np.nanmean(d_off) + 2.0
    assert (d_on >= d_off - 1.0).all()
    longer = d_on - d_off
    hi = on["ifng_peak"].values > np.nanmedian(on["ifng_peak"].values)
    assert np.nanmean(longer[hi]) > np.nanmean(longer[~hi])
    none_on = _trial([*over, "regimen.car_dose_per_kg=0"], n=30)
    none_off = _trial([*over, "regimen.car_dose_per_kg=0", "+model.params.emax_ifng_my=0"], n=30)
    np.testing.assert_allclose(none_on["neutropenia_g4_days"].values,
                               none_off["neutropenia_g4_days"].values, rtol=1e-9, atol=1e-9)


def test_a_refractory_mass_fails_to_respond_without_delaying_the_blood_peak():
    """NCT05290155 and Lu 2022: marrow CR in 14/14 and 19/20, extramedullary CR in only
    9/14 and 5/9. The same 200 patients, all with a mass, with and without the
    refractory-lesion class: patients drawn into it lose most of their extramedullary CRs,
    the others are untouched (identical patients), the failure is local (their marrow
    responds as before) and a mass the CAR-T cells barely reach adds little to their
    expansion (the blood peak moves by days, within a week, not by weeks)."""
    over = ["population.em_probability=1.0", "output.t_end=120"]
    mixed = _trial([*over, "population.em_refractory_probability=0.5"], n=200)
    plain = _trial([*over, "population.em_refractory_probability=0"], n=200)
    refr = mixed["em_refractory"].values.astype(bool)
    assert 60 < refr.sum() < 140
    assert "em_refractory" not in plain
    cr_m = np.asarray(mixed["em_best_response"].values) == 1
    cr_p = np.asarray(plain["em_best_response"].values) == 1
    assert cr_p[refr].mean() > 0.7, cr_p[refr].mean()
    assert cr_m[refr].mean() < 0.5 * cr_p[refr].mean(), (cr_m[refr].mean(), cr_p[refr].mean())
    np.testing.assert_array_equal(cr_m[~refr], cr_p[~refr])
    t_m = np.nanmedian(mixed["tmax_qpcr"].values[refr])
    t_p = np.nanmedian(plain["tmax_qpcr"].values[refr])
    assert abs(t_m - t_p) <= 7.0, (t_m, t_p)  # ~4 days later at the calibrated values
    marrow_m = np.asarray(mixed["best_response"].values)[refr] > 0
    marrow_p = np.asarray(plain["best_response"].values)[refr] > 0
    assert abs(int(marrow_m.sum()) - int(marrow_p.sum())) <= max(2, 0.05 * refr.sum())
