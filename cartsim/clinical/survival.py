"""Deaths drawn from a per-patient hazard, and the time-to-event endpoints (PFS, OS, DOR).

Death model (parameters in :class:`~cartsim.clinical.settings.DeathModel`): the
hazard ``h(t)`` (1/day), a sum of cause-specific hazards (leukemia, infection during
neutropenia or CD7+ T-cell aplasia, fatal CRS, transplant), is evaluated on the output
grid from day 0 and
integrated by the trapezoid rule to the cumulative hazard ``H(t)`` (the
transplant term in closed form; ``H`` linear between output times). Patient
``i`` dies at the first time ``H_i(t) > E_i`` with ``E_i = -ln(1 - U_i)``,
``U_i ~ Uniform(0, 1)``: the inverse-transform draw of an event time with
survival function ``exp(-H(t))``. The uniforms come from
``numpy.random.default_rng(seed)``: the draw for the patient with index ``k``
(the Dataset's integer ``patient`` coordinate) is the ``k``-th number of that
stream, so a patient's death depends only on its own trajectory and index, not
on threads or on how a cohort is split into batches.

Cause of death (the clinical convention): leukemia when the patient dies with
active disease (never in remission within the response window, or after a
relapse or progression); otherwise non-relapse mortality. The mechanism
(``death_mechanism``) is the cause-specific hazard that was largest at the death
time: leukemia, infection, CRS or transplant.

Time-to-event endpoints (days since infusion, censored at the end of follow-up):
PFS event = relapse, progression or death; OS event = death; DOR (responders)
runs from the first remission day to relapse or death. Relapses and
progressions after death were already excluded upstream.
"""

from __future__ import annotations

import numpy as np

from cartsim.clinical._common import Var, category_var, cumulative_integral, day_var, flag_var
from cartsim.clinical.settings import DeathModel, EndpointSettings

DEATH_CAUSE = {0: "alive", 1: "leukemia", 2: "non_relapse_mortality"}
DEATH_MECHANISM = {0: "alive", 1: "leukemia", 2: "infection", 3: "crs", 4: "transplant"}


def trm_initial_hazard(d: DeathModel) -> float:
    """``h0`` (1/day) with ``int_0^365 h0 exp(-s/tau) ds = -ln(1 - trm_1y)``."""
    return -np.log1p(-d.trm_1y) / (d.trm_tau_days * -np.expm1(-365.0 / d.trm_tau_days))


def hazards(t: np.ndarray, x: dict[str, np.ndarray], s: EndpointSettings) -> dict:
    """Trajectory-driven cause-specific hazards (1/day), each of shape (patient, T).

    ``x`` holds ``marrow_blast_pct``, ``em_volume_cm3``, ``anc_per_ul``,
    ``t_cd7pos_per_ul`` and ``il6`` on the times ``t`` (days from 0). Keys:
    ``leukemia``, ``infection`` (neutropenia, ramped by its duration, plus aplasia), ``crs``.
    """
    d = s.death
    burden = (x["marrow_blast_pct"] / 100.0 / d.leukemia_f50
              + x["em_volume_cm3"] / d.leukemia_em_v50_cm3)
    bn = np.maximum(burden, 0.0) ** d.leukemia_hill
    leuk = d.leukemia_hazard_max_per_day * bn / (1.0 + bn) * (t >= d.leukemia_onset_day)
    neut = x["anc_per_ul"] < s.neutropenia_g4_per_ul
    if d.neutropenia_ramp_days > 0.0:
        ramp = np.minimum(cumulative_integral(t, neut.astype(float)) / d.neutropenia_ramp_days,
                          1.0)
    else:
        ramp = 1.0
    infection = (d.neutropenia_hazard_per_day * neut * ramp
                 + d.aplasia_hazard_per_day * (x["t_cd7pos_per_ul"] < s.aplasia_cd7pos_per_ul))
    crs = d.crs_hazard_per_day * (x["il6"] >= s.crs_il6_thresholds_pg_ml[3])
    return {"leukemia": leuk, "infection": infection, "crs": crs}


def _trm_since(t: np.ndarray, hsct_day) -> np.ndarray:
    """Days since the transplant (0 before it or without one), shape (patient, T)."""
    hsct = np.asarray(hsct_day, dtype=float)[:, None]
    return np.maximum(t[None, :] - np.fmax(hsct, t[0]), 0.0)  # NaN (no HSCT) -> t[0]


def cumulative_hazard(t: np.ndarray, x: dict[str, np.ndarray], hsct_day: np.ndarray | None,
                      s: EndpointSettings, h: dict | None = None) -> np.ndarray:
    """Cumulative death hazard ``H(t) = int_{t[0]}^t h`` (-), shape (patient, T).

    ``x`` holds the trajectories :func:`hazards` reads on the times ``t``
    (or pass its result as ``h``); ``hsct_day`` (patient,) is the transplant
    day or NaN (None: no transplant information). The trajectory-driven hazards
    are integrated by the trapezoid rule; the transplant hazard, whose start is
    known exactly, in closed form: ``h0 tau (1 - exp(-(t - hsct_day)/tau))``.
    """
    d = s.death
    h = hazards(t, x, s) if h is None else h
    H = cumulative_integral(t, h["leukemia"] + h["infection"] + h["crs"])
    if hsct_day is not None and d.trm_1y > 0.0:
        hsct = np.asarray(hsct_day, dtype=float)[:, None]
        since = _trm_since(t, hsct_day)
        trm = trm_initial_hazard(d) * d.trm_tau_days * -np.expm1(-since / d.trm_tau_days)
        H = H + np.where(np.isfinite(hsct), trm, 0.0)
    return H


def death_mechanism(t: np.ndarray, h: dict, hsct_day, death: np.ndarray,
                    s: EndpointSettings) -> Var:
    """Which cause-specific hazard was largest at each patient's death (0: alive)."""
    died = np.isfinite(death)
    # the output interval holding the death: H rises there by the trapezoid of each hazard
    k = np.clip(np.searchsorted(t, np.where(died, death, t[0])), 1, t.size - 1)
    rows = np.arange(death.size)
    comps = [h[c][rows, k - 1] + h[c][rows, k] for c in ("leukemia", "infection", "crs")]
    comps.append(np.zeros(death.size))
    if hsct_day is not None and s.death.trm_1y > 0.0:
        hs = np.asarray(hsct_day, dtype=float)
        since = np.where(died, death, t[0]) - hs
        comps[3] = np.where(np.isfinite(hs) & (since >= 0.0), 2.0 * trm_initial_hazard(s.death)
                            * np.exp(-np.maximum(since, 0.0) / s.death.trm_tau_days), 0.0)
    which = np.argmax(np.stack(comps), axis=0) + 1
    return category_var(np.where(died, which, 0),
                        "mechanism of death: the cause-specific hazard largest at the death "
                        "time (leukemia, infection in neutropenia/aplasia, CRS, transplant)",
                        DEATH_MECHANISM)


def exponential_thresholds(seed: int, patient_index) -> np.ndarray:
    """``E_k = -ln(1 - U_k)``, one standard-exponential threshold per patient index ``k``.

    ``patient_index``: the patients' non-negative integer indices (or a count ``n``,
    meaning indices ``0..n-1``); ``U_k`` is the ``k``-th draw of ``default_rng(seed)``.
    """
    idx = np.arange(patient_index) if np.ndim(patient_index) == 0 else np.asarray(patient_index)
    if idx.size == 0:
        return np.zeros(0)
    if not (np.issubdtype(idx.dtype, np.integer) and idx.min() >= 0):
        raise ValueError("the Dataset's 'patient' coordinate must hold non-negative integer "
                         f"patient indices for the death model's draws; got {idx[:5]!r}")
    u = np.random.default_rng(seed).random(int(idx.max()) + 1)[idx]
    return -np.log1p(-u)


def death_day(t: np.ndarray, H: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """First time the cumulative hazard ``H`` exceeds each patient's threshold (NaN: survives).

    ``H`` is taken as linear between output times, so the crossing is found by
    linear interpolation; a constant hazard gives exactly exponential death times.
    """
    crossed = H > thresholds[:, None]
    k = np.maximum(np.argmax(crossed, axis=1), 1)  # H[:, 0] = 0 is never above E >= 0
    rows = np.arange(H.shape[0])
    h0, h1 = H[rows, k - 1], H[rows, k]
    frac = (thresholds - h0) / np.where(h1 > h0, h1 - h0, 1.0)
    day = t[k - 1] + np.clip(frac, 0.0, 1.0) * (t[k] - t[k - 1])
    return np.where(crossed.any(axis=1), day, np.nan)


def survival(follow_up_day: float, death: np.ndarray, response_day: np.ndarray,
             relapse_day: np.ndarray, progression_day: np.ndarray) -> dict[str, Var]:
    """Death, its cause, PFS, OS and DOR (days; events after the end of follow-up censored)."""
    died = np.isfinite(death)
    responder = np.isfinite(response_day)
    active = ~responder | np.isfinite(relapse_day) | np.isfinite(progression_day)
    pfs_end = np.fmin(np.fmin(relapse_day, progression_day), death)
    dor_end = np.fmin(relapse_day, death)
    pfs_event, dor_event = np.isfinite(pfs_end), responder & np.isfinite(dor_end)
    end = f"censored at the end of follow-up (day {follow_up_day:g})"
    return {
        "death": flag_var(died, "death (drawn from the per-patient hazard model)"),
        "death_day": day_var(death, "day of death (NaN: alive at the end of follow-up)"),
        "death_cause": category_var(
            np.where(died, np.where(active, 1, 2), 0),
            "cause of death: leukemia (with active disease) or non-relapse mortality "
            "(in remission)", DEATH_CAUSE),
        "pfs_day": day_var(
            np.where(pfs_event, pfs_end, follow_up_day),
            f"progression-free survival time (relapse, progression or death; {end})"),
        "pfs_event": flag_var(pfs_event, "PFS event observed (False: censored)"),
        "os_day": day_var(np.where(died, death, follow_up_day), f"overall survival time ({end})"),
        "os_event": flag_var(died, "OS event (death) observed (False: censored)"),
        "dor_day": day_var(np.where(responder, np.where(dor_event, dor_end, follow_up_day)
                                    - response_day, np.nan),
                           f"duration of response: first remission to relapse or death ({end}; "
                           "NaN: non-responder)"),
        "dor_event": flag_var(dor_event, "DOR event (relapse or death) observed"),
    }
