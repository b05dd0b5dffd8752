r"""Step-size control of the step loops: the initial step, step landing, accept/reject factors.

Hairer's scaled RMS error norm ``err`` (``<= 1`` accepts) comes from the step functions
(``rodas.rodas_step``, ``dopri.dp5_step``); this module turns it into the next step:

* Rodas4 (as ``RODAS``): ``h_new = h / clip(err^(1/4) / 0.9, 1/6, 5)``, with Gustafsson's
  predictive (PI) correction after the second accepted step of a segment;
* DP5 (as ``DOPRI5``): Lund-stabilised PI control ``fac = err^0.17 / err_old^0.04``,
  ``h_new = h / clip(fac / 0.9, 1/10, 5)``;
* after a rejection the next accepted step may not grow (``step_ends``);
* the initial step is Hairer's ``HINIT`` (``hinit``);
* DP5's stiffness test (``stiffness_test``, as ``DOPRI5``) drives the DP5 -> BDF switch.

BDF's step and order control are SciPy's (``cartsim.solvers.bdf``, ``order_factor``).

References
----------
E. Hairer, S. P. Norsett, G. Wanner, *Solving Ordinary Differential Equations I*,
2nd ed., Springer 1993, Sect. II.4 (step-size control, ``HINIT``).

E. Hairer, G. Wanner, *Solving Ordinary Differential Equations II*, 2nd ed.,
Springer 1996, Sect. IV.8 (predictive step control), IV.2 (stiffness detection).
"""

import math

import numba as nb
import numpy as np

from cartsim.models import kernels
from cartsim.solvers.codes import MAX_STEPS, STEP_UNDERFLOW, SUCCESS

STIFF_HLAMB = 0.8
"""A DP5 step with ``h |lambda| >`` this (estimated as in Hairer's ``DOPRI5``) counts towards
the switch to BDF. ``DOPRI5`` flags only steps at the stability boundary (3.25), but DP5's
error estimate already holds the step back from ``h |lambda| ~ 1``, where BDF steps are
several times longer: on ``cd7`` switching at 0.8 after 5 steps halves the steps of days
0..365 against 3.25 after 15 (``benchmarks/run.py``), while the non-stiff lymphodepletion
segments (``h |lambda|`` mostly below 0.6) stay with DP5."""
STIFF_SWITCH = 5
"""Steps above ``STIFF_HLAMB`` (without ``NONSTIFF_RESET`` consecutive ones below) before the
switch to BDF."""
NONSTIFF_RESET = 6

_SAFE = 0.9
# bounds on fac = h / h_new. Rodas (as RODAS): 0.2 <= h_new / h <= 6
_R_FACMIN = 1.0 / 6.0
_R_FACMAX = 5.0
# DP5 (as DOPRI5): 0.2 <= h_new / h <= 10
_D_FACMIN = 0.1
_D_FACMAX = 5.0
_D_BETA = 0.04
_D_EXPO = 0.2 - 0.04 * 0.75


@nb.njit(cache=True, error_model="numpy")
def hinit(mid, t, y, p, f0, atol, rtol, order, hmax_eff, y1, f1):
    """Hairer's initial step-size heuristic (``HINIT`` of ``DOPRI5``); one rhs call."""
    n = y.shape[0]
    dnf = 0.0
    dny = 0.0
    for i in range(n):
        sk = atol[i] + rtol * abs(y[i])
        dnf += (f0[i] / sk) ** 2
        dny += (y[i] / sk) ** 2
    if dnf <= 1e-10 or dny <= 1e-10:
        h = 1e-6
    else:
        h = math.sqrt(dny / dnf) * 0.01
    h = min(h, hmax_eff)
    for i in range(n):
        y1[i] = y[i] + h * f0[i]
    kernels.rhs(mid, t + h, y1, p, f1)
    der2 = 0.0
    for i in range(n):
        sk = atol[i] + rtol * abs(y[i])
        der2 += ((f1[i] - f0[i]) / sk) ** 2
    der2 = math.sqrt(der2) / h
    der12 = max(abs(der2), math.sqrt(dnf))
    if not math.isfinite(der12):
        return min(h * 1e-3, hmax_eff)
    if der12 <= 1e-15:
        h1 = max(1e-6, h * 1e-3)
    else:
        h1 = (0.01 / der12) ** (1.0 / order)
    return min(100.0 * h, h1, hmax_eff)


@nb.njit(cache=True, error_model="numpy")
def next_step(t, h, tseg, hmin, nsteps, max_steps):
    """A step of ``h`` from ``t``, landing on the segment end ``tseg`` when within ``1.01 h``.

    Returns ``(h, last, status)``: ``status`` is ``STEP_UNDERFLOW`` below ``hmin``,
    ``MAX_STEPS`` when ``nsteps`` attempts are used up, else ``SUCCESS``.
    """
    last = False
    if t + 1.01 * h >= tseg:
        h = tseg - t
        last = True
    if h < hmin:
        return h, last, STEP_UNDERFLOW
    if nsteps >= max_steps:
        return h, last, MAX_STEPS
    return h, last, SUCCESS


@nb.njit(cache=True, error_model="numpy")
def step_ends(t, h, hnew, hfull, tseg, last, reject):
    """After an accepted step ``[t, t + h]``: ``(hnew, tn, hp)``.

    ``hnew`` no larger than ``h`` after a rejection; ``tn`` the step's end (exactly
    ``tseg`` for the ``last`` step of a segment); ``hp`` the step proposed for the next
    segment (a landing step shortened to ``tseg`` does not shrink it).
    """
    if reject and hnew > h:
        hnew = h
    tn = tseg if last else t + h
    hp = max(hnew, hfull) if last else hnew
    return hnew, tn, hp


@nb.njit(cache=True, error_model="numpy")
def rodas_accept(err, h, nacc_seg, hacc, erracc):
    """``RODAS``'s next step after an accepted one, with Gustafsson's predictive control
    from the segment's second accepted step on: ``(h_new, hacc, erracc)``."""
    fac = max(_R_FACMIN, min(_R_FACMAX, err ** 0.25 / _SAFE))
    if nacc_seg >= 1:
        facgus = (hacc / h) * (err * err / erracc) ** 0.25 / _SAFE
        facgus = max(_R_FACMIN, min(_R_FACMAX, facgus))
        fac = max(fac, facgus)
    return h / fac, h, max(1e-2, err)


@nb.njit(cache=True, error_model="numpy")
def rodas_reject(err, h):
    """The next Rodas4 step after a rejected one (``err > 1``)."""
    fac = max(_R_FACMIN, min(_R_FACMAX, err ** 0.25 / _SAFE))
    return h / fac


@nb.njit(cache=True, error_model="numpy")
def dp5_accept(err, h, facold):
    """``DOPRI5``'s Lund-stabilised PI control after an accepted step: ``(h_new, facold)``."""
    fac = err ** _D_EXPO / facold ** _D_BETA
    fac = max(_D_FACMIN, min(_D_FACMAX, fac / _SAFE))
    return h / fac, max(err, 1e-4)


@nb.njit(cache=True, error_model="numpy")
def dp5_reject(err, h):
    """The next DP5 step after a rejected one (``err > 1``)."""
    return h / min(_D_FACMAX, err ** _D_EXPO / _SAFE)


@nb.njit(cache=True, error_model="numpy")
def stiffness_test(h, kst, ynew, ytmp, iasti, nonsti):
    """``DOPRI5``'s stiffness test after an accepted DP5 step: ``(iasti, nonsti)``.

    ``h |lambda|`` is estimated from stages 6 (``ytmp``, ``kst[5]``) and 7 (``ynew``,
    ``kst[6]``), both at ``t + h``, as ``h ||k7 - k6|| / ||y7 - y6||``; a step above
    ``STIFF_HLAMB`` counts in ``iasti``, ``NONSTIFF_RESET`` steps below in a row reset it.
    """
    stnum = 0.0
    stden = 0.0
    for i in range(ynew.shape[0]):
        d1 = kst[6, i] - kst[5, i]
        d2 = ynew[i] - ytmp[i]
        stnum += d1 * d1
        stden += d2 * d2
    if stden > 0.0 and h * h * stnum > STIFF_HLAMB * STIFF_HLAMB * stden:
        nonsti = 0
        iasti += 1
    else:
        nonsti += 1
        if nonsti >= NONSTIFF_RESET:
            iasti = 0
    return iasti, nonsti


@nb.njit(cache=True, error_model="numpy")
def order_factor(err, expo):
    """``err ** (-1 / expo)`` with ``0 -> inf`` and ``inf -> 0`` (as NumPy; BDF order choice)."""
    if err == 0.0:
        return np.inf
    if not math.isfinite(err):
        return 0.0
    return err ** (-1.0 / expo)
