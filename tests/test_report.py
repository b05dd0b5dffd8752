"""The trial report on a hand-built endpoints Dataset whose every count is known by construction."""

from __future__ import annotations

import csv
import math
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from scipy.stats import beta

from cartsim.report import (
    SECTIONS,
    format_trial_summary,
    survival_curves,
    trial_summary,
    write_trial_report,
)
from cartsim.stats import kaplan_meier

MONTH = 30.4375
N_EVAL = 20
FAILED = ((1, "max_steps"), (3, "non_finite"))  # two failed solves appended after patient 19
FOLLOW_UP = 730.0  # days; the month-24 assessment day, round(24 * 30.4375)
I = np.arange(N_EVAL)
RELAPSED = np.array([3, 5, 7, 9, 11, 13])
RELAPSE_CD7NEG = np.array([3, 5, 9, 13])
DEATHS = {5: (1, 300.0), 9: (1, 400.0), 13: (1, 500.0), 19: (1, 150.0), 1: (2, 200.0)}


def exact_ci(k, n):
    """Clopper-Pearson bounds from the beta quantiles, independently of cartsim.stats."""
    return (0.0 if k == 0 else beta.ppf(0.025, k, n - k + 1),
            1.0 if k == n else beta.ppf(0.975, k + 1, n - k))


def design() -> dict[str, np.ndarray]:
    """Endpoint values of the 20 evaluable patients."""
    crs = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 3, 3, 4])
    icans = np.array([0] * 16 + [1, 1, 2, 3])
    em_best = np.zeros(N_EVAL, int)
    em_best[:8] = [1, 1, 1, 1, 1, 2, 3, 4]
    relapse = np.isin(I, RELAPSED)
    relapse_day = np.where(relapse, 120.0 + 20.0 * I, np.nan)
    death = np.isin(I, list(DEATHS))
    death_day = np.array([DEATHS[i][1] if i in DEATHS else np.nan for i in I])
    best = np.array([2] * 19 + [0])
    response_day = np.where(best >= 1, 14.0 + I % 10, np.nan)
    progression = I == 19
    pfs_day = np.select([relapse, progression, death], [relapse_day, 60.0, death_day],
                        FOLLOW_UP)
    pfs_event = relapse | progression | death
    cmax = 1000.0 * (I + 1.0) ** 2
    return {
        "response_d28": np.array([2] * 18 + [1, 0]), "best_response": best,
        "mrd_flow_neg_d28": I < 17, "mrd_mol_neg_d28": I < 12, "mrd_flow_neg_m3": I < 15,
        "mrd_mol_neg_m3": I < 14, "best_mrd_flow_neg": I < 18, "best_mrd_mol_neg": I < 16,
        "response_day": response_day, "em_present": I < 8, "em_best_response": em_best,
        "crs_grade": crs, "crs_onset_day": np.where(crs > 0, 2.0 + I % 5, np.nan),
        "crs_grade_1m": np.where(I == 2, 0, crs), "crs_grade_3m": crs,
        "icans_grade": icans, "icans_onset_day": np.where(icans > 0, 7.0 + I % 3, np.nan),
        "icans_grade_1m": icans, "icans_grade_3m": icans,
        "cytopenia_g34": I > 0, "t_aplasia_days": 30.0 + 3 * I,
        "neutropenia_g4_days": (I % 7).astype(float), "anc_recovery_day": 20.0 + I,
        "cmax_qpcr": cmax, "tmax_qpcr": 10.0 + I % 8, "auc28_qpcr": 10 * cmax,
        "persistence_qpcr": np.where(I < 19, 100.0 + 10 * I, np.nan),
        "cmax_flow": cmax / 100, "tmax_flow": 11.0 + I % 6, "auc28_flow": cmax / 10,
        "persistence_flow": 90.0 + 10 * I, "expansion": I >= 1, "car_detectable_m6": I < 12,
        "relapse": relapse, "relapse_day": relapse_day,
        "relapse_cd7neg": np.isin(I, RELAPSE_CD7NEG), "progression": progression,
        "progression_day": np.where(progression, 60.0, np.nan),
        "death": death, "death_day": death_day,
        "death_cause": np.array([DEATHS[i][0] if i in DEATHS else 0 for i in I]),
        "pfs_day": pfs_day, "pfs_event": pfs_event,
        "os_day": np.where(death, death_day, FOLLOW_UP), "os_event": death,
        "dor_day": pfs_day - response_day, "dor_event": pfs_event & (best >= 1),
        "cd7_clearance_day": 3.0 + I % 4,
        "il6_peak": 100.0 * (I + 1), "ifng_peak": 50.0 * (I + 1), "il10_peak": 20.0 * (I + 1),
        "tnfa_peak": 5.0 * (I + 1), "flu_auc": 10.0 + 0.5 * I,
    }


def make_endpoints(follow_up: float = FOLLOW_UP) -> xr.Dataset:
    """20 evaluable patients, then two failed ones whose values would change every rate."""
    d = design()
    data = {}
    for name, v in d.items():
        v = np.asarray(v)
        # failed patients look like complete responders with huge values: counting them shows
        fill = True if v.dtype == bool else (2 if v.dtype.kind == "i" else 1e9)
        if name.endswith(("_day", "_days")) and name not in ("pfs_day", "os_day"):
            fill = np.nan
        if name in ("pfs_day", "os_day"):
            v = np.where(v == FOLLOW_UP, follow_up, v)
            fill = 1.0
        full = np.concatenate([v, np.full(len(FAILED), fill, dtype=v.dtype)])
        data[name] = ("patient", full, {"units": "1", "long_name": name.replace("_", " ")})
    status = np.array([0] * N_EVAL + [s for s, _ in FAILED])
    data["status"] = ("patient", status, {"units": "1", "long_name": "solver status"})
    data["status_name"] = ("patient", np.array(["success"] * N_EVAL + [n for _, n in FAILED]),
                           {"long_name": "solver status name"})
    data["evaluable"] = ("patient", status == 0, {"units": "1", "long_name": "evaluable"})
    attrs = {"model": "cd7", "seed": 42, "cartsim_version": "0.1.0",
             "surrogate_note": "CRS and ICANS grades are SURROGATES from IL-6 peaks (test)."}
    return xr.Dataset(data, coords={"patient": np.arange(N_EVAL + len(FAILED))}, attrs=attrs)


@pytest.fixture(scope="module")
def rows():
    return {r["endpoint"]: r for r in trial_summary(make_endpoints())}


def check_rate(row, k, n):
    lo, hi = exact_ci(k, n)
    assert (row["stat"], row["n"], row["N"]) == ("proportion", k, n)
    assert row["value"] == pytest.approx(k / n)
    assert (row["lo"], row["hi"]) == pytest.approx((lo, hi), rel=1e-9)
    assert row["text"] == f"{k}/{n} ({100 * k / n:.1f}%; 95% CI {100 * lo:.1f}-{100 * hi:.1f})"


def test_response_rates_are_over_evaluable_patients_with_exact_cis(rows):
    check_rate(rows["CR at day 28"], 18, 20)
    assert rows["CR at day 28"]["text"] == "18/20 (90.0%; 95% CI 68.3-98.8)"
    check_rate(rows["CRi at day 28"], 1, 20)
    check_rate(rows["CR/CRi (ORR) at day 28"], 19, 20)
    check_rate(rows["MRD-negative (flow, < 1e-4) CR/CRi at day 28"], 17, 20)
    check_rate(rows["MRD-negative (molecular, < 1e-5) CR/CRi at day 28"], 12, 20)
    check_rate(rows["MRD-negative (molecular, < 1e-5) at month 3"], 14, 20)
    check_rate(rows["Best response CR"], 19, 20)
    check_rate(rows["Best response NR"], 1, 20)


def test_extramedullary_rates_are_among_patients_with_em_disease(rows):
    check_rate(rows["Extramedullary (EM) disease at baseline"], 8, 20)
    for label, k in (("CR", 5), ("PR", 1), ("SD", 1), ("PD", 1)):
        check_rate(rows[f"EM {label} (among EM disease)"], k, 8)
    check_rate(rows["EM ORR (CR+PR, among EM disease)"], 6, 8)


def test_failed_solves_are_excluded_with_a_visible_count_and_names(rows):
    assert rows["Patients simulated"]["n"] == 22
    assert (rows["Evaluable (solver succeeded)"]["n"],
            rows["Evaluable (solver succeeded)"]["N"]) == (20, 22)
    failed = rows["Failed solves (excluded from all rates)"]
    assert failed["n"] == 2
    assert failed["text"] == "2/22: patient 20 (max_steps), patient 21 (non_finite)"


def test_safety_grades_and_medians(rows):
    d = design()
    check_rate(rows["CRS any grade"], 18, 20)
    check_rate(rows["CRS grade >= 3"], 3, 20)
    for g, k in enumerate((2, 8, 7, 2, 1)):
        check_rate(rows[f"CRS grade {g} (worst)"], k, 20)
    check_rate(rows["CRS any grade, onset within 1 month"], 17, 20)
    check_rate(rows["ICANS any grade"], 4, 20)
    check_rate(rows["ICANS grade >= 3"], 1, 20)
    check_rate(rows["Grade 3-4 cytopenia (ANC < 1000/uL)"], 19, 20)
    onset = rows["CRS onset day"]
    want = d["crs_onset_day"][d["crs_grade"] > 0]
    assert (onset["n"], onset["N"]) == (18, 20)
    assert (onset["value"], onset["lo"], onset["hi"]) == (np.median(want), 2.0, 6.0)
    aplasia = rows["CD7+ T-cell aplasia duration"]
    assert aplasia["value"] == pytest.approx(np.median(30.0 + 3 * I))
    assert aplasia["text"] == "median 58.5 days (range 30.0-87.0); n=20/20"


def test_cellular_kinetics(rows):
    cmax = rows["Cmax, qPCR"]
    assert cmax["value"] == pytest.approx(np.median(1000.0 * (I + 1.0) ** 2))
    assert (cmax["lo"], cmax["hi"]) == (1000.0, 400_000.0)
    assert cmax["text"] == "median 110,500 copies/ug (range 1,000-400,000); n=20/20"
    persistence = rows["Persistence, qPCR (last day >= LLOQ)"]
    assert (persistence["n"], persistence["N"]) == (19, 20)  # NaN = never detectable
    assert persistence["value"] == np.median(100.0 + 10 * I[:19])
    check_rate(rows["Expansion observed"], 19, 20)
    check_rate(rows["CAR-T detectable at month 6 (qPCR >= LLOQ)"], 12, 20)


def test_relapse_rows(rows):
    check_rate(rows["Relapse (among responders)"], 6, 19)
    check_rate(rows["CD7-negative relapse (among relapses)"], 4, 6)
    check_rate(rows["Progression (among non-responders)"], 1, 1)
    check_rate(rows["Non-relapse mortality"], 1, 20)
    ttr = rows["Time to relapse"]
    assert ttr["unit"] == "month"
    assert ttr["value"] == pytest.approx(np.median(120.0 + 20.0 * RELAPSED) / MONTH)


def test_km_rows_match_kaplan_meier_on_the_same_patients(rows):
    d = design()
    for name, stem in (("PFS", "pfs"), ("OS", "os")):
        km = kaplan_meier(d[f"{stem}_day"], d[f"{stem}_event"])
        for m, day in ((6, 183), (12, 365), (24, 730)):  # assessment days round(m * MONTH)
            row = rows[f"{name} at {m} months (day {day})"]
            s, lo, hi = km.at(day)
            assert (row["value"], row["lo"], row["hi"]) == pytest.approx((s, lo, hi))
            assert row["n"] == int((d[f"{stem}_day"] >= day).sum())
            assert row["N"] == 20
        med = rows[f"Median {name}"]
        assert med["n"] == int(d[f"{stem}_event"].sum())
        np.testing.assert_allclose([med["value"], med["lo"], med["hi"]],
                                   np.array(km.median()) / MONTH)
    # by hand: PFS events are 6 relapses, 1 progression (19) and 1 death without relapse (1),
    # all before day 730 and nobody censored before day 730, so S(24 months) = 12/20
    assert rows["PFS at 24 months (day 730)"]["value"] == pytest.approx(12 / 20)
    assert rows["Median PFS"]["text"].startswith("not reached (95% CI ")
    dor = rows["Median DOR (responders)"]
    assert (dor["n"], dor["N"]) == (7, 19)  # 19 responders; 6 relapses + 1 death in remission


def test_landmark_beyond_follow_up_is_reported_as_not_estimable():
    rows = {r["endpoint"]: r for r in trial_summary(make_endpoints(follow_up=700.0))}
    row = rows["OS at 24 months (day 730)"]
    assert math.isnan(row["value"])
    assert row["text"] == "not estimable (follow-up ends day 700 < day 730)"
    assert math.isfinite(rows["OS at 12 months (day 365)"]["value"])


def test_pharmacodynamics(rows):
    il6 = rows["Peak IL-6"]
    assert (il6["value"], il6["lo"], il6["hi"]) == (np.median(100.0 * (I + 1)), 100.0, 2000.0)
    check_rate(rows["Fludarabine AUC >= 13.8 mg*h/L (Fabrizio 2022)"], 12, 20)


def test_every_section_appears_in_order():
    all_rows = trial_summary(make_endpoints())
    assert list(dict.fromkeys(r["section"] for r in all_rows)) == list(SECTIONS)
    assert len({r["endpoint"] for r in all_rows}) == len(all_rows)


def test_write_trial_report_files(tmp_path):
    ep = make_endpoints()
    had_pyplot = "matplotlib.pyplot" in sys.modules
    paths = write_trial_report(ep, tmp_path / "report", title="test trial")
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        "trial_km.png", "trial_summary.csv", "trial_summary.md"]  # no temporary files left
    png = paths["km_png"].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    if not had_pyplot:
        assert "matplotlib.pyplot" not in sys.modules

    rows = trial_summary(ep)
    with paths["csv"].open(newline="") as fh:
        back = list(csv.DictReader(fh))
    assert len(back) == len(rows)
    for r, b in zip(rows, back):
        assert (b["section"], b["endpoint"], b["text"]) == (r["section"], r["endpoint"],
                                                            r["text"])
        assert (int(b["n"]), int(b["N"])) == (r["n"], r["N"])
        np.testing.assert_array_equal([float(b[k]) for k in ("value", "lo", "hi")],
                                      [r[k] for k in ("value", "lo", "hi")])

    md = paths["markdown"].read_text()
    assert md.startswith("# test trial\n")
    assert "model `cd7` | cartsim 0.1.0 | seed 42 | N = 22 simulated, 20 evaluable" in md
    for section in SECTIONS:
        assert f"\n## {section}\n" in md
    assert "> CRS and ICANS grades are SURROGATES from IL-6 peaks (test)." in md
    assert "- patient 20: max_steps (status 1)" in md
    assert "| CR at day 28 | 18/20 | 18/20 (90.0%; 95% CI 68.3-98.8) |" in md


def test_markdown_without_a_surrogate_note_still_says_surrogate(tmp_path):
    ep = make_endpoints()
    del ep.attrs["surrogate_note"]
    md = write_trial_report(ep, tmp_path)["markdown"].read_text()
    assert "grades are model surrogates" in md.split("## Cellular kinetics")[0].split(
        "## Safety")[1]


def test_format_trial_summary_lists_every_row_under_its_section():
    rows = trial_summary(make_endpoints())
    text = format_trial_summary(rows)
    lines = text.splitlines()
    assert [ln for ln in lines if not ln.startswith(" ")] == list(SECTIONS)
    assert len(lines) == len(rows) + len(SECTIONS)
    assert any(ln.strip().startswith("CR at day 28") and ln.endswith("68.3-98.8)")
               for ln in lines)


def test_a_cohort_with_every_solve_failed_still_reports(tmp_path):
    ep = make_endpoints()
    ep["status"][:] = 2
    ep["evaluable"][:] = False
    rows = {r["endpoint"]: r for r in trial_summary(ep)}
    assert rows["Failed solves (excluded from all rates)"]["n"] == 22
    assert rows["CR at day 28"]["text"] == "0/0 (not applicable)"
    assert rows["Cmax, qPCR"]["text"] == "none (n=0/0)"
    assert rows["Median OS"]["text"] == "no patients"
    assert math.isnan(rows["OS at 6 months (day 183)"]["value"])
    paths = write_trial_report(ep, tmp_path)
    assert paths["km_png"].stat().st_size > 0


def test_survival_curves_use_evaluable_patients_only():
    curves = survival_curves(make_endpoints())
    assert curves["PFS"].n == curves["OS"].n == 20


def test_missing_variables_are_named():
    with pytest.raises(ValueError, match=r"lacks \['crs_grade', 'flu_auc'\]"):
        trial_summary(make_endpoints().drop_vars(["crs_grade", "flu_auc"]))


def test_nan_grade_of_an_evaluable_patient_is_an_error_naming_it():
    ep = make_endpoints()
    ep["crs_grade"] = ep["crs_grade"].astype(float)
    ep["crs_grade"][4] = np.nan
    with pytest.raises(ValueError, match=r"crs_grade of patient 4 is nan; "
                                         r"accepted one of \[0, 1, 2, 3, 4\]"):
        trial_summary(ep)


def test_em_patient_without_an_em_response_is_an_error():
    ep = make_endpoints()
    ep["em_best_response"][0] = 0
    with pytest.raises(ValueError, match="em_best_response of patient 0 is 0"):
        trial_summary(ep)


@pytest.mark.parametrize("times", [(), (6, -1), (float("nan"),)])
def test_bad_landmarks_are_rejected(times):
    with pytest.raises(ValueError, match="times_months"):
        trial_summary(make_endpoints(), times_months=times)


def test_importing_the_report_stays_light():
    code = ("import sys, cartsim.report; "
            "print(sorted(m for m in ('matplotlib', 'scipy.stats') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
