"""Response to CAR-T: marrow remission and MRD, extramedullary (Lugano-like) response, relapse.

Marrow (ALL criteria, e.g. NCCN): remission when blasts < ``remission_blast_pct``
(5%); CR when the ANC is also >= ``anc_recovery_per_ul`` (1000/uL) at that time,
else CRi (no platelet model, so platelets are not assessed). MRD-negative when
the blast fraction of marrow cells ``marrow_blast_pct / 100`` is below
``mrd_flow`` (1e-4) or ``mrd_molecular`` (1e-5) while in remission. Day-28 and
month-3 assessments read the trajectory at that day; best response, response
day and best MRD take every output time in ``0 < t <= response_window_day``.
Nothing after death counts (an early death is a non-responder).

Relapse: after a response, the first day blasts are back at >= 5%; CD7-negative
when more than ``cd7neg_relapse_pct`` of blasts are CD7-negative then.
Progression (non-responders only): blasts >= (1 + ``progression_blast_increase``)
x their nadir since day 0 (>= 25% rise, NCCN ALL). Relapse and progression are
marrow events; an extramedullary regrowth after a marrow response is not one.

Extramedullary disease (volume form of the Lugano criteria, Cheson et al. 2014
J Clin Oncol 32:3059, with V ~ SPD^1.5 for a sphere), at each time with
baseline volume ``V0`` (first output time, before lymphodepletion) and nadir
``Vmin`` (since baseline): CR if ``V <= em_cr_volume_cm3``; PR if ``V <=
em_pr_volume_ratio * V0``; PD if ``V >= em_pd_volume_ratio * Vmin``; else SD.
Best response in the window: the best CR/PR before the first PD; PD if
progression comes first; else SD.
"""

from __future__ import annotations

import numpy as np

from cartsim.clinical._common import (
    Track,
    Var,
    at_time,
    category_var,
    day_var,
    first_time,
    flag_var,
    needs_follow_up,
    value_at,
)
from cartsim.clinical.settings import EndpointSettings, assessment_day

MARROW_RESPONSE = {0: "no_response", 1: "complete_remission_incomplete_count_recovery",
                   2: "complete_remission"}
EM_RESPONSE = {0: "not_evaluable_no_extramedullary_disease", 1: "complete_response",
               2: "partial_response", 3: "stable_disease", 4: "progressive_disease"}
RESPONSE_DAY = 28.0
"""Day of the early marrow assessment (day 28, the usual CAR-T trial primary assessment)."""


def _category(blast_pct, anc, s: EndpointSettings):
    """0 no response, 1 CRi, 2 CR, elementwise."""
    rem = blast_pct < s.remission_blast_pct
    return np.where(rem, np.where(anc >= s.anc_recovery_per_ul, 2, 1), 0)


def _mrd_negative(blast_pct, mrd: float, s: EndpointSettings):
    return (blast_pct < s.remission_blast_pct) & (blast_pct / 100.0 < mrd)


def _assessments(tr: Track, s: EndpointSettings) -> dict[str, Var]:
    """Day-28 response and day-28 / month-3 MRD status."""
    b, anc = tr.x["marrow_blast_pct"], tr.x["anc_per_ul"]
    seen28 = tr.seen_at(RESPONSE_DAY)
    b28 = value_at(tr.t, b, RESPONSE_DAY)
    out = {"response_d28": needs_follow_up(category_var(
        np.where(seen28, _category(b28, value_at(tr.t, anc, RESPONSE_DAY), s), 0),
        f"marrow response at day 28: CR blasts < {s.remission_blast_pct:g}% with ANC >= "
        f"{s.anc_recovery_per_ul:g}/uL, CRi without (death before day 28: no response)",
        MARROW_RESPONSE), RESPONSE_DAY)}
    m3 = assessment_day(3)
    for tag, day, bd in (("d28", RESPONSE_DAY, b28), ("m3", m3, value_at(tr.t, b, m3))):
        for kind, mrd in (("flow", s.mrd_flow), ("mol", s.mrd_molecular)):
            out[f"mrd_{kind}_neg_{tag}"] = needs_follow_up(flag_var(
                tr.seen_at(day) & _mrd_negative(bd, mrd, s),
                f"{'flow' if kind == 'flow' else 'molecular'} MRD-negative marrow "
                f"(blast fraction < {mrd:g}) on day {day:g}"), day)
    return out


def marrow_response(tr: Track, s: EndpointSettings) -> dict[str, Var]:
    """Marrow response, MRD, relapse and progression endpoints."""
    t, b = tr.t, tr.x["marrow_blast_pct"]
    window = tr.observed & (t > 0.0) & (t <= s.response_window_day)
    out = _assessments(tr, s)
    cat = np.where(window, _category(b, tr.x["anc_per_ul"], s), 0)
    w = f"days 0-{s.response_window_day:g}"
    out["best_response"] = needs_follow_up(category_var(
        cat.max(axis=1), f"best marrow response, {w}", MARROW_RESPONSE), s.response_window_day)
    response_day = first_time(t, window & (b < s.remission_blast_pct))
    out["response_day"] = day_var(
        response_day, f"first day marrow blasts < {s.remission_blast_pct:g}% ({w}; NaN: none)")
    for kind, mrd in (("flow", s.mrd_flow), ("mol", s.mrd_molecular)):
        out[f"best_mrd_{kind}_neg"] = needs_follow_up(flag_var(
            (window & _mrd_negative(b, mrd, s)).any(axis=1),
            f"{'flow' if kind == 'flow' else 'molecular'} MRD-negative marrow "
            f"(blast fraction < {mrd:g}) at any time, {w}"), s.response_window_day)

    after = tr.observed & (t[None, :] > np.nan_to_num(response_day, nan=np.inf)[:, None])
    relapse_day = first_time(t, after & (b >= s.remission_blast_pct))
    out["relapse"] = flag_var(np.isfinite(relapse_day),
                              f"relapse: marrow blasts back to >= {s.remission_blast_pct:g}% "
                              "after a response")
    out["relapse_day"] = day_var(relapse_day, "day of relapse (NaN: none)")
    out["relapse_cd7neg"] = flag_var(
        at_time(t, tr.x["blast_cd7neg_pct"], relapse_day) > s.cd7neg_relapse_pct,
        f"CD7-negative relapse: > {s.cd7neg_relapse_pct:g}% of blasts CD7-negative at relapse")

    nadir = np.minimum.accumulate(np.where(tr.observed, b, np.inf), axis=1)
    rising = (b >= s.remission_blast_pct) & (b >= (1.0 + s.progression_blast_increase) * nadir)
    progression_day = first_time(t, tr.observed & np.isnan(response_day)[:, None] & rising)
    out["progression"] = flag_var(
        np.isfinite(progression_day),
        f"progression of a non-responder: marrow blasts >= {1 + s.progression_blast_increase:g}"
        " x their nadir since day 0")
    out["progression_day"] = day_var(progression_day, "day of progression (NaN: none)")
    return out


def extramedullary_response(tr: Track, v0: np.ndarray, s: EndpointSettings) -> dict[str, Var]:
    """Presence of extramedullary disease and its best (Lugano-like, volume) response."""
    t, v = tr.t, tr.x["em_volume_cm3"]
    present = v0 > 0.0
    window = tr.observed & present[:, None] & (t > 0.0) & (t <= s.response_window_day)
    nadir = np.minimum(np.minimum.accumulate(np.where(tr.observed, v, np.inf), axis=1),
                       v0[:, None])
    cr = v <= s.em_cr_volume_cm3
    pr = ~cr & (v <= s.em_pr_volume_ratio * v0[:, None])
    pd = ~cr & (v >= s.em_pd_volume_ratio * nadir)
    t_pd = np.nan_to_num(first_time(t, window & pd), nan=np.inf)
    before_pd = window & (t[None, :] < t_pd[:, None])
    best = np.select([~present, (before_pd & cr).any(axis=1), (before_pd & pr).any(axis=1),
                      np.isfinite(t_pd)], [0, 1, 2, 4], default=3)
    return {
        "em_present": flag_var(present, "extramedullary disease at baseline (volume > 0)"),
        "em_best_response": needs_follow_up(category_var(
            best, f"best extramedullary response, days 0-{s.response_window_day:g} "
                  f"(Lugano-like on volume: CR <= {s.em_cr_volume_cm3:.3g} cm3, PR <= "
                  f"{s.em_pr_volume_ratio:.3g} x baseline, PD >= "
                  f"{s.em_pd_volume_ratio:.3g} x nadir)",
            EM_RESPONSE, fill=0), s.response_window_day),
    }
