"""Safety endpoints: SURROGATE CRS and ICANS grades, T-cell aplasia, neutropenia, count recovery.

The model has no fever, hypotension, hypoxia or encephalopathy, so CRS and ICANS
grades are SURROGATES computed from the cytokine trajectories, not ASTCT grades:

* CRS grade = the number of ``crs_il6_thresholds_pg_ml`` (grades 1..4) that the
  IL-6 peak after day 0 reaches. Peak IL-6 (with IFN-gamma) separates severe from
  mild CRS (Teachey et al. 2016 Cancer Discov 6:664; Hay et al. 2017 Blood
  130:2295). Onset: the first day IL-6 reaches the grade-1 threshold.
* ICANS grade = min(grade of the IL-6 peak on ``icans_il6_thresholds_pg_ml``,
  grade of the IFN-gamma peak on ``icans_ifng_thresholds_pg_ml``), and 0 unless the
  CRS grade is >= 1: neurotoxicity follows CRS and occurs with high IL-6 and
  IFN-gamma, i.e. strong expansion (Santomasso et al. 2018 Cancer Discov 8:958;
  Gust et al. 2017 Cancer Discov 7:1404). Onset: the first day both cytokines have
  reached their grade-1 thresholds.
* ``*_grade_1m`` / ``*_grade_3m``: the same grade computed only from the
  trajectories up to 1 / 3 months (30.4375 / 91.3125 days), i.e. the worst grade
  with onset within that window.

The thresholds are starting values to be recalibrated to trial incidences.
Durations (aplasia, grade-4 neutropenia) are trapezoid integrals of the
condition's indicator from day 0 to death or the end of follow-up; on a daily
grid they count days.
"""

from __future__ import annotations

import numpy as np

from cartsim.clinical._common import (
    Track,
    Var,
    category_var,
    day_var,
    duration,
    first_time,
    flag_var,
    grade,
    needs_follow_up,
    peak,
    run_length,
)
from cartsim.clinical.settings import MONTH_DAYS, EndpointSettings, assessment_day

GRADES = {0: "none", 1: "grade_1", 2: "grade_2", 3: "grade_3", 4: "grade_4"}
SURROGATE_NOTE = (
    "CRS and ICANS grades are SURROGATES, not ASTCT consensus grades: the model has no fever, "
    "hypotension, hypoxia or encephalopathy. CRS grade = number of the thresholds "
    "{crs} pg/mL (grades 1-4) reached by the IL-6 peak after day 0 (Teachey 2016 Cancer Discov "
    "6:664; Hay 2017 Blood 130:2295); onset = first day IL-6 >= {crs0} pg/mL. ICANS grade = "
    "the lower of the grades of the IL-6 peak on {icans_il6} pg/mL and of the IFN-gamma peak "
    "on {icans_ifng} pg/mL, 0 without CRS (Santomasso 2018 Cancer Discov 8:958; Gust 2017 "
    "Cancer Discov 7:1404); onset = first day both reach their grade-1 thresholds. _1m/_3m: "
    "the grade from the trajectories up to month 1/3 (30.4375/91.3125 days). Thresholds are "
    "settings, to be calibrated to trial incidences.")


def surrogate_note(s: EndpointSettings) -> str:
    """Text for the ``surrogate_note`` attribute, with the thresholds in use."""
    return SURROGATE_NOTE.format(crs=s.crs_il6_thresholds_pg_ml,
                                 crs0=s.crs_il6_thresholds_pg_ml[0],
                                 icans_il6=s.icans_il6_thresholds_pg_ml,
                                 icans_ifng=s.icans_ifng_thresholds_pg_ml)


def _grades(tr: Track, s: EndpointSettings, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(CRS grade, ICANS grade) from the cytokine peaks where ``mask`` holds."""
    il6 = peak(tr.t, tr.x["il6"], mask)[0]
    ifng = peak(tr.t, tr.x["ifng"], mask)[0]
    crs = grade(il6, s.crs_il6_thresholds_pg_ml)
    icans = np.minimum(grade(il6, s.icans_il6_thresholds_pg_ml),
                       grade(ifng, s.icans_ifng_thresholds_pg_ml))
    return crs, np.where(crs >= 1, icans, 0)


def cytokine_toxicity(tr: Track, s: EndpointSettings) -> dict[str, Var]:
    """Surrogate CRS and ICANS grades (worst, within month 1 and 3) and onset days."""
    t, obs = tr.t, tr.observed
    out: dict[str, Var] = {}
    for tag, months in (("", None), ("_1m", 1), ("_3m", 3)):
        mask = obs if months is None else obs & (t <= months * MONTH_DAYS)
        crs, icans = _grades(tr, s, mask)
        when = "" if months is None else f" within month {months}"
        crs_v = category_var(
            crs, f"SURROGATE CRS grade{when} (from the IL-6 peak; not an ASTCT grade)", GRADES)
        icans_v = category_var(
            icans, f"SURROGATE ICANS grade{when} (from IL-6 and IFN-gamma peaks, 0 without "
                   "CRS; not an ICE/ASTCT grade)", GRADES)
        if months is not None:  # the daily assessments of the window: days 0..month-m day
            crs_v = needs_follow_up(crs_v, assessment_day(months))
            icans_v = needs_follow_up(icans_v, assessment_day(months))
        out[f"crs_grade{tag}"], out[f"icans_grade{tag}"] = crs_v, icans_v
    il6_on = first_time(t, obs & (tr.x["il6"] >= s.crs_il6_thresholds_pg_ml[0]))
    out["crs_onset_day"] = day_var(
        np.where(out["crs_grade"].data >= 1, il6_on, np.nan),
        f"SURROGATE CRS onset: first day IL-6 >= {s.crs_il6_thresholds_pg_ml[0]:g} pg/mL")
    icans_on = np.maximum(
        first_time(t, obs & (tr.x["il6"] >= s.icans_il6_thresholds_pg_ml[0])),
        first_time(t, obs & (tr.x["ifng"] >= s.icans_ifng_thresholds_pg_ml[0])))
    out["icans_onset_day"] = day_var(
        np.where(out["icans_grade"].data >= 1, icans_on, np.nan),
        "SURROGATE ICANS onset: first day IL-6 and IFN-gamma have both reached their grade-1 "
        "thresholds")
    return out


def cytopenias(tr: Track, s: EndpointSettings) -> dict[str, Var]:
    """CD7+ T-cell aplasia, grade 3-4 neutropenia and neutrophil recovery."""
    t, obs, anc = tr.t, tr.observed, tr.x["anc_per_ul"]
    out = {
        "t_aplasia_days": Var(
            duration(t, obs & (tr.x["t_cd7pos_per_ul"] < s.aplasia_cd7pos_per_ul)),
            {"units": "day", "long_name": f"days with normal CD7+ T cells < "
                                          f"{s.aplasia_cd7pos_per_ul:g} cells/uL after day 0"}),
        "neutropenia_g4_days": Var(
            duration(t, obs & (anc < s.neutropenia_g4_per_ul)),
            {"units": "day", "long_name": f"days with ANC < {s.neutropenia_g4_per_ul:g}/uL "
                                          "(grade 4 neutropenia) after day 0"}),
        "cytopenia_g34": flag_var(
            (obs & (anc < s.neutropenia_g3_per_ul)).any(axis=1),
            f"grade 3-4 neutropenia: ANC < {s.neutropenia_g3_per_ul:g}/uL after day 0"),
    }
    recovered = obs & (anc >= s.anc_recovery_per_ul)
    sustained = recovered & (run_length(t, recovered) >= s.anc_recovery_sustain_days - 1e-9)
    nadir_day = peak(t, -anc, obs)[1]
    dropped = (obs & (anc < s.anc_recovery_per_ul)).any(axis=1)
    out["anc_recovery_day"] = day_var(
        np.where(dropped, first_time(t, sustained & (t[None, :] >= nadir_day[:, None])), np.nan),
        f"first day after the ANC nadir with ANC >= {s.anc_recovery_per_ul:g}/uL sustained "
        f"{s.anc_recovery_sustain_days:g} days (NaN: never below, or no recovery)")
    return out
