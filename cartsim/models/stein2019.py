"""Stein et al. 2019 multiphasic CAR-T cellular-kinetics model.

Stein AM, Grupp SA, Levine JE, et al. Tisagenlecleucel model-based cellular
kinetic analysis of chimeric antigen receptor-T cells. CPT Pharmacometrics Syst
Pharmacol 2019; 8(5):285-295. doi:10.1002/psp4.12388

Two linear states in transgene copies per ug genomic DNA (qPCR): the expanding
/ effector level E and the memory level M. With t_inf the infusion day and
s = t - t_inf::

    s < Tmax :   dE/dt = rho E,        dM/dt = 0,              rho = ln(foldx) / Tmax
    s >= Tmax:   dE/dt = -alpha E,     dM/dt = k E - beta M,   k = FB (alpha - beta)

    E(t_inf) = Cmax / foldx,  M(t_inf) = 0,  E = M = 0 before the infusion.

The observed level C = E + M has the closed form (no interventions)::

    C(t) = (Cmax / foldx) exp(rho s)                                   0 <= s < Tmax
    C(t) = (1 - FB) Cmax exp(-alpha (s - Tmax)) + FB Cmax exp(-beta (s - Tmax))   s >= Tmax

Units: the model is stated directly in the units of the assay that measures the level
(Stein 2019 fitted qPCR copies/ug). Fitted to other data, ``C``, ``E``, ``M`` and ``Cmax``
take the unit of the fitted analyte (:data:`LEVEL_ANALYTES`: flow CAR-T cells/uL or
% of T cells); the other parameters are rates, times and ratios and keep theirs. A
simulation (no data) reports copies/ug, the unit of the published parameter set.

Implementation: the infusion is an ADD_STATE event at ``regimen.car_days[0]``;
the switch to the contraction phase is a SET_PARAM event of the phase-flag slot
at t_inf + Tmax, so the kernel right-hand side (``stein2019_kernel``) is
autonomous and the solver never steps across the discontinuity.

Interventions (approximation): Stein 2019 estimated the expansion rate rho as
multiplied by Ftoci in patients who received tocilizumab and by Fster in
patients who received corticosteroids. Here the factor applies from the first
*scheduled* dose (``regimen.toci_days[0]``, ``regimen.steroid_days[0]``) onward,
if that dose falls before the peak (t_inf + Tmax); it therefore changes the
peak level, which is then E(t_inf + Tmax) instead of Cmax. Doses after the peak
have no effect (rho is not used after Tmax). IL-6-triggered doses cannot be
represented (the model has no IL-6) and are ignored with a warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np

from cartsim.models import stein2019_kernel as K
from cartsim.models.base import Model, Observable, Problem, StateSpec
from cartsim.models.kernels import MODEL_STEIN2019  # = 1
from cartsim.parameters.base import ParameterError, ParameterSet
from cartsim.parameters.stein2019 import STEIN2019
from cartsim.solvers.api import ADD_STATE, SET_PARAM, EventTable, RuleTable

LEVEL_ANALYTES = ("car_copies_per_ug", "car_cells_per_ul", "car_pct_of_t")
"""Analytes (names of :data:`cartsim.fitting.data.ANALYTES`) the level ``C`` can describe:
qPCR copies/ug (Stein 2019), flow CAR-T cells/uL, flow CAR+ % of T cells. ``Cmax`` is in the
unit of the analyte fitted; one fit describes one of them."""

LEVEL_PARAMETERS = ("Cmax",)
"""Parameters in the unit of the level (the others are dimensionless, day or 1/day)."""


def fill_derived(p: np.ndarray) -> np.ndarray:
    """Fill the derived slots of kernel parameter vector(s) in place and return ``p``.

    ``p[..., P_RHO] = ln(foldx) / Tmax`` and ``p[..., P_K] = FB * (alpha - beta)``,
    computed from the parameter-set slots ``p[..., :N_BASE]``. Flags (phase,
    tocilizumab, steroids) are left as they are. Call after changing any base
    parameter (e.g. when sampling a cohort).
    """
    p[..., K.P_RHO] = np.log(p[..., K.P_FOLDX]) / p[..., K.P_TMAX]
    p[..., K.P_K] = p[..., K.P_FB] * (p[..., K.P_ALPHA] - p[..., K.P_BETA])
    return p


def _base_values(params) -> np.ndarray:
    """The 8 parameter-set values from a ParameterSet, a name -> value mapping or a p vector."""
    if params is None:
        return STEIN2019.values()
    if isinstance(params, ParameterSet):
        return params.values()
    if isinstance(params, Mapping):
        return STEIN2019.with_values(params).values()
    arr = np.asarray(params, dtype=np.float64)
    return arr[..., : K.N_BASE]


def closed_form(t, params=None, t_inf: float = 0.0, toci_day: float | None = None,
                ster_day: float | None = None) -> np.ndarray:
    """Analytic C(t) = E(t) + M(t) (copies/ug) of the Stein 2019 model for all t.

    Parameters
    ----------
    t : array_like
        Times (day, same clock as ``t_inf``).
    params : ParameterSet, mapping or array, optional
        A ``ParameterSet``, a mapping of overrides to ``STEIN2019`` or a kernel
        parameter vector (only its first 8 slots are read); a 2-d array holds one
        parameter vector per row (the result then has one row per vector). Default:
        ``STEIN2019``.
    t_inf : float
        Infusion day.
    toci_day, ster_day : float, optional
        First scheduled tocilizumab / corticosteroid day; the expansion rate is
        multiplied by Ftoci / Fster from that day on if it precedes the peak
        (same approximation as ``Stein2019.build``).

    Returns
    -------
    numpy.ndarray
        0 for t < t_inf; ``(Cmax/foldx) exp(int g)`` during expansion; after the
        peak, ``(1-FB) Ep exp(-alpha (s-Tmax)) + FB Ep exp(-beta (s-Tmax))`` with
        ``Ep`` the peak level (``Cmax`` without interventions). Shape of ``t``, or
        ``(rows, len(t))`` for a 2-d ``params``.
    """
    v = _base_values(params)
    batch = v.ndim == 2
    v = np.atleast_2d(v)
    foldx, tmax, cmax, alpha, fb, beta, ftoci, fster = (v[:, k, None] for k in range(K.N_BASE))
    tt = np.asarray(t, dtype=np.float64)
    t = np.atleast_1d(tt)[None, :]
    t_pk = t_inf + tmax
    rho = np.log(foldx) / tmax
    e0 = cmax / foldx
    # first dose day if it precedes the peak, else never (inf)
    ct = np.where(t_pk > toci_day, toci_day, np.inf) if toci_day is not None else np.inf
    cs = np.where(t_pk > ster_day, ster_day, np.inf) if ster_day is not None else np.inf
    both = np.maximum(ct, cs)

    def overlap(b, c):  # length of [t_inf, b] intersected with [c, inf) (0 where empty)
        return np.clip(b - np.maximum(t_inf, c), 0.0, None)

    def growth(b):  # integral of the expansion rate from t_inf to b (b <= t_pk)
        return rho * ((b - t_inf) + (ftoci - 1.0) * overlap(b, ct)
                      + (fster - 1.0) * overlap(b, cs)
                      + (ftoci - 1.0) * (fster - 1.0) * overlap(b, both))

    e_pk = e0 * np.exp(growth(t_pk))
    expansion = e0 * np.exp(growth(np.clip(t, t_inf, t_pk)))
    u = np.clip(t - t_pk, 0.0, None)
    contraction = (1.0 - fb) * e_pk * np.exp(-alpha * u) + fb * e_pk * np.exp(-beta * u)
    out = np.where(t < t_inf, 0.0, np.where(t < t_pk, expansion, contraction))
    return out if batch else out[0].reshape(tt.shape)


def half_lives(params=None) -> dict[str, float]:
    """Derived times (day): expansion doubling ``ln2/rho``, ``ln2/alpha``, ``ln2/beta``."""
    foldx, tmax, _, alpha, _, beta, _, _ = (float(x) for x in _base_values(params))
    ln2 = math.log(2.0)
    return {
        "doubling_time": ln2 * tmax / math.log(foldx),
        "initial_half_life": ln2 / alpha,
        "terminal_half_life": ln2 / beta if beta > 0 else math.inf,
    }


class Stein2019(Model):
    """Stein et al. 2019 (CPT:PSP 8:285) multiphasic CAR-T kinetics: expansion, contraction,
    persistence of the transgene level in blood (copies/ug genomic DNA).

    See the module docstring for the equations and ``stein2019_kernel`` for the
    parameter-vector layout.
    """

    name = "stein2019"
    model_id = MODEL_STEIN2019
    states = (
        StateSpec("E", "copies/ug", "expanding/effector CAR transgene level (copies per ug gDNA)",
                  log=False, atol=1e-6),
        StateSpec("M", "copies/ug", "memory CAR transgene level (copies per ug gDNA)",
                  log=False, atol=1e-6),
    )
    default_method = "rodas4"

    @property
    def parameters(self) -> ParameterSet:
        return STEIN2019

    def parameter_vector(self, overrides: Mapping[str, float] | None = None) -> np.ndarray:
        """Kernel vector ``p`` (length ``N_P``): parameter set with ``overrides``, derived
        slots filled, phase/intervention flags 0. Unknown names or out-of-bound values
        raise ``ParameterError``; so does ``alpha <= beta``."""
        ps = STEIN2019.with_values(overrides) if overrides else STEIN2019
        p = np.zeros(K.N_P, dtype=np.float64)
        p[: K.N_BASE] = ps.values()
        if not p[K.P_ALPHA] > p[K.P_BETA]:
            raise ParameterError(
                f"model.params: alpha={p[K.P_ALPHA]!r} must exceed beta={p[K.P_BETA]!r} "
                "(1/day) in the Stein 2019 model (k = FB*(alpha-beta) >= 0)"
            )
        return fill_derived(p)

    def build(self, scenario) -> Problem:
        """Initial state, parameter vector and event table for one scenario.

        Events (sorted by time): ADD_STATE E += Cmax/foldx at t_inf =
        ``regimen.car_days[0]``; SET_PARAM phase = 1 at t_inf + Tmax; SET_PARAM
        toci / steroid flag = 1 at the first scheduled dose if before t_inf + Tmax.
        ``t0`` is the first output time, or the first event time if earlier.
        """
        p = self.parameter_vector(scenario.model.params)
        reg = scenario.regimen
        t_inf = float(reg.car_days[0])
        t_pk = t_inf + float(p[K.P_TMAX])
        e0 = float(p[K.P_CMAX] / p[K.P_FOLDX])
        notes = []

        ev = [(t_inf, ADD_STATE, K.I_E, e0), (t_pk, SET_PARAM, K.P_PHASE, 1.0)]
        toci_day = float(reg.toci_days[0]) if reg.toci_days else math.nan
        ster_day = float(reg.steroid_days[0]) if reg.steroid_days else math.nan
        if toci_day < t_pk:  # False for NaN (none scheduled)
            ev.append((toci_day, SET_PARAM, K.P_TOCI, 1.0))
        if ster_day < t_pk:
            ev.append((ster_day, SET_PARAM, K.P_STER, 1.0))
        if len(reg.car_days) > 1:
            notes.append("split dosing treated as one infusion at car_days[0] "
                         "(Stein 2019 has no dose dependence)")
        if reg.toci_il6_threshold is not None or reg.steroid_il6_threshold is not None:
            notes.append("IL-6-triggered tocilizumab/steroids ignored (no IL-6 in Stein 2019)")
        if notes:
            from cartsim import CartsimWarning

            for n in notes:
                warnings.warn(f"stein2019: {n}", CartsimWarning, stacklevel=2)

        t_ev, kind, idx, val = zip(*ev, strict=True)
        out = scenario.output
        t_out0 = float(out.times[0]) if out.times else float(out.t_start)
        t0 = min(t_out0, min(t_ev))
        return Problem(
            y0=np.zeros(K.N_STATES, dtype=np.float64),
            p=p,
            t0=t0,
            events=EventTable.from_lists(t_ev, kind, idx, val),  # stable sort by time
            rules=RuleTable.empty(),
            info={"t_inf": t_inf, "t_peak": t_pk, "E0": e0,
                  "toci_day": toci_day, "steroid_day": ster_day,  # NaN: none scheduled
                  "toci_effect": bool(toci_day < t_pk), "steroid_effect": bool(ster_day < t_pk),
                  "notes": notes},
        )

    def observables(self, y: np.ndarray, p: np.ndarray, info: dict | None = None
                    ) -> dict[str, Observable]:
        """Assay-level output C = E + M (copies/ug) from linear states ``y[..., 2]``.

        ``p`` and ``info`` are not needed (the model is stated directly in assay units).
        """
        y = np.asarray(y, dtype=np.float64)
        c = y[..., K.I_E] + y[..., K.I_M]
        return {
            "car_copies_per_ug": Observable(
                c, "copies/ug", "CAR transgene copies per ug genomic DNA (qPCR)"
            )
        }
