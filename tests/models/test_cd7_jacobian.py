"""The analytic cd7 Jacobian (``cd7_jacobian.jac``) agrees with finite differences of ``rhs``.

Reference: central differences with step ``h_j = 1e-6 max(|y_j|, 1)``. Where a
state sits within ``2 h_j`` of one of the kinks of ``rhs`` (cytokine baselines,
zero drug amounts, the myeloid floor, the boost clamp) the difference is taken
one-sided, on the side whose branch ``rhs`` takes at that point.

Tolerance per entry: ``RTOL |J_fd| + 1e-8 max_i |J_fd[:, j]|`` (a floor scaled by
the column) plus the rounding error of the difference quotient itself,
``64 eps T_i / h_j``, where ``T_i = |f_i| + sum_k |J_ik| s_k`` (``s_k`` = 1 for
ln-cell states, ``|y_k|`` otherwise) bounds the size of the terms summed in row
``i``: per-capita ratios such as ``M/E`` reach 1e12 at random states, and their
rounding swamps the small entries of the same row.
"""

import numpy as np
import pytest

import cartsim
from cartsim.models import cd7_kernel as K
from cartsim.models.cd7 import Cd7Model
from cartsim.models.cd7_jacobian import jac

RTOL = 1e-5
COL_FLOOR = 1e-8
EPS = np.finfo(float).eps
N = K.N_STATE


def _kinks(y, p):
    """(state, kink location, branch taken exactly at the kink is the right one)."""
    eta = p[K.P_ETA_H]
    return (
        (K.S_IFNG, p[K.P_IFNG0], False),  # max(ifng - ifng0, 0)
        (K.S_TNFA, p[K.P_TNFA0], False),
        (K.S_IL6, p[K.P_IL60], False),
        (K.S_TOCI, 0.0, False),  # occupancy only for toci > 0
        (K.S_DEX, 0.0, False),  # steroid inhibition only for dex > 0
        (K.S_MN, 1e-12, False),  # myeloid feedback only for mn > 1e-12
        (K.S_H, 1.0 - 1.0 / eta if eta != 0.0 else -np.inf, True),  # boost clamped if < 0
    )


def fd_jacobian(y, p):
    """Finite-difference Jacobian of ``rhs`` and its per-entry tolerance."""
    h = 1e-6 * np.maximum(np.abs(y), 1.0)
    side = np.zeros(N)  # 0 central, +1 forward, -1 backward
    for j, loc, right_closed in _kinks(y, p):
        if abs(y[j] - loc) < 2.0 * h[j]:
            on_right = y[j] > loc or (right_closed and y[j] == loc)
            side[j] = 1.0 if on_right else -1.0
    f0 = np.empty(N)
    fp = np.empty(N)
    fm = np.empty(N)
    K.rhs(0.0, y, p, f0)
    jf = np.empty((N, N))
    for j in range(N):
        yp = y.copy()
        ym = y.copy()
        if side[j] >= 0.0:
            yp[j] += h[j]
        if side[j] <= 0.0:
            ym[j] -= h[j]
        K.rhs(0.0, yp, p, fp)
        K.rhs(0.0, ym, p, fm)
        jf[:, j] = (fp - fm) / (yp[j] - ym[j])
    return jf, h, side, f0


def assert_jac_matches_fd(y, p, label=""):
    J = np.full((N, N), np.nan)  # jac must overwrite every entry
    jac(0.0, y, p, J)
    assert np.all(np.isfinite(J)), label
    jf, h, side, f0 = fd_jacobian(y, p)
    scale = np.where(np.arange(N) < K.N_CELL, 1.0, np.abs(y))
    terms = np.abs(f0) + np.abs(J) @ scale
    rounding = 64.0 * EPS * terms[:, None] / (h * np.where(side == 0.0, 2.0, 1.0))[None, :]
    tol = RTOL * np.abs(jf) + COL_FLOOR * np.abs(jf).max(axis=0)[None, :] + rounding
    bad = np.abs(J - jf) > tol
    if bad.any():
        msg = [f"{label}: {bad.sum()} entries differ"]
        for i, j in np.argwhere(bad)[:10]:
            msg.append(f"  d {K.STATE_NAMES[i]} / d {K.STATE_NAMES[j]}: "
                       f"jac {J[i, j]:.10g} fd {jf[i, j]:.10g} tol {tol[i, j]:.3g}")
        raise AssertionError("\n".join(msg))
    return J


# --- parameter vectors ------------------------------------------------------------------------
SCENARIOS = {
    "em_toci_dex": cartsim.Scenario(
        disease=cartsim.Disease(em_volume_cm3=20.0),
        regimen=cartsim.Regimen(toci_days=[1.0], steroid_days=[2.0])),
    "donor_high_residual": cartsim.Scenario(
        product=cartsim.Product(residual_cd7=0.2, donor_derived=True)),
    "em_low_density_no_residual": cartsim.Scenario(
        disease=cartsim.Disease(em_volume_cm3=5.0, cd7_density=0.4, em_access=0.8),
        product=cartsim.Product(residual_cd7=0.0, donor_derived=True)),
    "default": cartsim.Scenario(),
    "allogeneic": cartsim.Scenario(
        product=cartsim.Product(residual_cd7=0.02, donor_derived=True, allogeneic=True)),
}


def _problem(name):
    return Cd7Model().build(SCENARIOS[name])


def random_state(rng, pr, *, drugs, toci, dex, at_baseline):
    """A random but realistic state (ln cells 1..1e12; linear continuous states)."""
    p = pr.p
    y = pr.y0.copy()
    y[: K.N_CELL] = np.log(10.0 ** rng.uniform(0.0, 12.0, K.N_CELL))
    if drugs:
        y[K.S_F1] = rng.uniform(0.1, 60.0)
        y[K.S_F2] = rng.uniform(0.1, 30.0)
        y[K.S_F3] = rng.uniform(0.1, 30.0)
        y[K.S_CY] = rng.uniform(10.0, 3000.0)
    else:
        y[K.S_F1] = y[K.S_F2] = y[K.S_F3] = y[K.S_CY] = 0.0
    y[K.S_H] = rng.uniform(0.3, 3.0)
    y[K.S_A] = rng.uniform(0.0, 3.0)
    for s, base in ((K.S_IFNG, K.P_IFNG0), (K.S_TNFA, K.P_TNFA0), (K.S_IL6, K.P_IL60),
                    (K.S_IL10, K.P_IL100)):
        if at_baseline:
            y[s] = p[base]
        else:
            y[s] = p[base] * 10.0 ** rng.uniform(0.02, 3.0)
    y[K.S_TOCI] = rng.uniform(0.5, 200.0) if toci else 0.0
    y[K.S_DEX] = rng.uniform(0.1, 20.0) if dex else 0.0
    y[K.S_MP] = rng.uniform(0.05, 2.0)
    y[K.S_MN] = rng.uniform(0.01, 2.0)
    y[K.S_FAUC] = rng.uniform(0.0, 50.0)
    pp = p.copy()
    if drugs:  # infusion running
        pp[K.D_RATE_FLU] = rng.uniform(100.0, 3000.0)
        pp[K.D_RATE_CY] = rng.uniform(1000.0, 20000.0)
    return y, pp


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("drugs", [True, False])
@pytest.mark.parametrize("at_baseline", [False, True])
def test_jac_matches_fd_at_random_states(scenario, drugs, at_baseline):
    pr = _problem(scenario)
    rng = np.random.default_rng([list(SCENARIOS).index(scenario), drugs, at_baseline])
    for k in range(12):
        toci, dex = bool(k & 1), bool(k & 2)
        y, p = random_state(rng, pr, drugs=drugs, toci=toci, dex=dex, at_baseline=at_baseline)
        assert_jac_matches_fd(y, p, f"{scenario} state {k} (toci={toci}, dex={dex})")


def test_kink_branches_take_the_rhs_branch_derivative():
    """At cytokine baselines, zero drug amounts: the slope of the branch rhs takes (0)."""
    pr = _problem("em_toci_dex")
    rng = np.random.default_rng(7)
    y, p = random_state(rng, pr, drugs=False, toci=False, dex=False, at_baseline=True)
    J = assert_jac_matches_fd(y, p, "baseline")
    for s in (K.S_IFNG, K.S_TNFA, K.S_IL6, K.S_TOCI):
        assert J[K.S_A, s] == 0.0
    assert J[K.S_IL6, K.S_TOCI] == 0.0
    dex_col = J[:, K.S_DEX].copy()
    dex_col[K.S_DEX] = 0.0
    assert np.all(dex_col == 0.0)
    # just above the kinks the slopes switch on
    y[K.S_IFNG] *= 1.1
    y[K.S_TOCI] = 1.0
    y[K.S_IL6] *= 1.1
    y[K.S_DEX] = 1.0
    J = assert_jac_matches_fd(y, p, "above baseline")
    assert J[K.S_A, K.S_IFNG] > 0.0 and J[K.S_A, K.S_TOCI] < 0.0
    assert J[K.S_E, K.S_DEX] != 0.0


def test_boost_clamp_and_myeloid_floor():
    pr = _problem("default")
    rng = np.random.default_rng(11)
    y, p = random_state(rng, pr, drugs=True, toci=True, dex=True, at_baseline=False)
    p[K.P_ETA_H] = 2.0
    y[K.S_H] = 0.2  # boost = 1 + 2 (0.2 - 1) < 0: clamped to 0, no dependence on H
    y[K.S_MN] = 1e-13  # below the floor: feedback constant
    J = assert_jac_matches_fd(y, p, "clamped")
    assert J[K.S_E, K.S_H] == 0.0
    assert J[K.S_MP, K.S_MN] == 0.0
    y[K.S_H] = 0.8  # boost = 0.6 > 0
    y[K.S_MN] = 1e-3
    J = assert_jac_matches_fd(y, p, "unclamped")
    assert J[K.S_E, K.S_H] > 0.0
    assert J[K.S_MP, K.S_MN] < 0.0


def test_jac_ignores_t_and_infusion_rates():
    pr = _problem("em_toci_dex")
    rng = np.random.default_rng(3)
    y, p = random_state(rng, pr, drugs=True, toci=True, dex=True, at_baseline=False)
    J1 = np.empty((N, N))
    J2 = np.empty((N, N))
    jac(0.0, y, p, J1)
    q = p.copy()
    q[K.D_RATE_FLU] = 0.0
    q[K.D_RATE_CY] = 0.0
    jac(17.5, y, q, J2)
    np.testing.assert_array_equal(J1, J2)


@pytest.fixture(scope="module")
def trajectory():
    scs = [cartsim.Scenario(), SCENARIOS["em_toci_dex"]]
    ds = cartsim.simulate(scs)
    assert list(ds["status_name"].values) == ["success", "success"]
    return scs, ds


def test_jac_matches_fd_along_trajectories(trajectory):
    scs, ds = trajectory
    idx = np.unique(np.linspace(0, ds.sizes["time"] - 1, 20).round().astype(int))
    for k, sc in enumerate(scs):
        p = Cd7Model().build(sc).p
        lin = np.stack([ds[name].values[k] for name in K.STATE_NAMES], axis=-1)
        for i in idx:
            y = lin[i].copy()
            y[: K.N_CELL] = np.log(y[: K.N_CELL])
            assert_jac_matches_fd(y, p, f"patient {k} t={float(ds.time[i])}")
