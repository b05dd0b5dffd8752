"""Deaths drawn from a per-patient hazard, and the time-to-event endpoints (PFS, OS, DOR).

Death model (parameters in :class:`~cartsim.clinical.settings.DeathModel`): the
hazard ``h(t)`` (1/day) is evaluated on the output grid from day 0 and
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
relapse or progression); otherwise non-relapse mortality.

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


def trm_initial_hazard(d: DeathModel) -> float:
    """``h0`` (1/day) with ``int_0^365 h0 exp(-s/tau) ds = -ln(1 - trm_1y)``."""
    return -np.log1p(-d.trm_1y) / (d.trm_tau_days * -np.expm1(-365.0 / d.trm_tau_days))


def cumulative_hazard(t: np.ndarray, x: dict[str, np.ndarray], hsct_day: np.ndarray | None,
                      s: EndpointSettings) -> np.ndarray:
    """Cumulative death hazard ``H(t) = int_{t[0]}^t h`` (-), shape (patient, T).

    ``x`` holds ``marrow_blast_pct``, ``em_volume_cm3``, ``anc_per_ul`` and
    ``t_cd7pos_per_ul`` on the times ``t``; ``hsct_day`` (patient,) is the transplant
    day or NaN (None: no transplant information). The trajectory-driven hazards
    are integrated by the trapezoid rule; the transplant hazard, whose start is
    known exactly, in closed form: ``h0 tau (1 - exp(-(t - hsct_day)/tau))``.
    """
    d = s.death
    burden = (x["marrow_blast_pct"] / 100.0 / d.leukemia_f50
              + x["em_volume_cm3"] / d.leukemia_em_v50_cm3)
    bn = np.maximum(burden, 0.0) ** d.leukemia_hill
    h = d.leukemia_hazard_max_per_day * bn / (1.0 + bn)
    h = h + d.neutropenia_hazard_per_day * (x["anc_per_ul"] < s.neutropenia_g4_per_ul)
    h = h + d.aplasia_hazard_per_day * (x["t_cd7pos_per_ul"] < s.aplasia_cd7pos_per_ul)
    H = cumulative_integral(t, h)
    if hsct_day is not None and d.trm_1y > 0.0:
        hsct = np.asarray(hsct_day, dtype=float)[:, None]
        since = np.maximum(t[None, :] - np.fmax(hsct, t[0]), 0.0)  # NaN (no HSCT) -> t[0]
        trm = trm_initial_hazard(d) * d.trm_tau_days * -np.expm1(-since / d.trm_tau_days)
        H = H + np.where(np.isfinite(hsct), trm, 0.0)
    return H


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
