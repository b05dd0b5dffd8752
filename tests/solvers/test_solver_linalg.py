"""LU factorisations: dense with partial pivoting and sparse triangular solves
(``rodas.lu_factor``), and the BDF loop's sparse LU in a fill-reducing order (``sparse_lu``)."""

import numpy as np
import pytest

from cartsim.solvers import bdf, rodas, sparse_lu


@pytest.mark.parametrize("n, density", [(1, 1.0), (5, 1.0), (14, 0.25), (23, 0.15), (30, 1.0)])
def test_lu_solve_matches_numpy(n, density):
    rng = np.random.default_rng(n)
    for _ in range(5):
        a = rng.standard_normal((n, n)) * (rng.random((n, n)) < density)
        a[np.arange(n), rng.permutation(n)] += rng.standard_normal(n)  # nonsingular, pivoting
        b = rng.standard_normal(n)
        lu = a.copy()
        piv = np.empty(n, np.int64)
        sp = np.empty((n, 2 * n + 2), np.int64)
        assert rodas.lu_factor(lu, piv, sp) == rodas.LU_OK
        x = b.copy()
        rodas.lu_solve(lu, piv, sp, x)
        np.testing.assert_allclose(a @ x, b, rtol=0, atol=1e-9 * np.abs(a).sum(axis=1).max())


def test_lu_singular_and_nonfinite():
    piv = np.empty(3, np.int64)
    sp = np.empty((3, 8), np.int64)
    a = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 0.0, 1.0]])
    assert rodas.lu_factor(a.copy(), piv, sp) == rodas.LU_SINGULAR
    a = np.eye(3)
    a[1, 1] = np.nan
    assert rodas.lu_factor(a, piv, sp) == rodas.LU_NONFINITE


# ------------------------------------------------------------------ sparse LU (BDF's Newton solves)

def _natural_fill(a):
    """Off-diagonal non-zeros of L + U from symbolic elimination in the natural order."""
    s = (a != 0) | np.eye(a.shape[0], dtype=bool)
    n = s.shape[0]
    for k in range(n):
        rows = np.flatnonzero(s[k + 1:, k]) + k + 1
        cols = np.flatnonzero(s[k, k + 1:]) + k + 1
        s[np.ix_(rows, cols)] = True
    return int(s.sum() - n)


def _solve_sparse(jm, c, b):
    """``(I - c jm) x = b`` through ``bdf.form_lu`` / ``bdf.lu_solve``; (status, sparse, x)."""
    n = jm.shape[0]
    sym, vals = sparse_lu.workspace(n)
    sparse_lu.analyse(jm, sym)
    lu = np.empty((n, n))
    piv = np.empty(n, np.int64)
    sp = np.empty((n, 2 * n + 2), np.int64)
    info, sparse = bdf.form_lu(jm, c, lu, piv, sp, sym, vals)
    x = b.copy()
    if info == rodas.LU_OK:
        bdf.lu_solve(lu, piv, sp, sym, vals, sparse, x)
    return info, sparse, x


@pytest.mark.parametrize("n, density", [(1, 1.0), (5, 0.5), (14, 0.25), (25, 0.15), (40, 0.08),
                                        (62, 0.05), (70, 0.05)])
def test_sparse_lu_solves_i_minus_cj(n, density):
    rng = np.random.default_rng(100 + n)
    for c in (0.01, 1.0, 100.0):
        jm = rng.standard_normal((n, n)) * (rng.random((n, n)) < density)
        jm[np.arange(n), np.arange(n)] -= 1.0 + rng.random(n)
        b = rng.standard_normal(n)
        info, sparse, x = _solve_sparse(jm, c, b)
        assert info == rodas.LU_OK
        assert sparse == (n <= sparse_lu.MAX_N)  # beyond MAX_N: the dense factorisation
        a = np.eye(n) - c * jm
        np.testing.assert_allclose(a @ x, b, rtol=0, atol=1e-10 * np.abs(a).sum(axis=1).max()
                                   * np.abs(x).max())


def test_sparse_lu_arrowhead_has_no_fill():
    # a dense first row and column fill the whole matrix in the natural order; eliminating
    # the other states first (Markowitz) leaves no fill at all
    n = 12
    jm = -np.eye(n)
    jm[0, :] = 0.5
    jm[:, 0] = 0.5
    sym, vals = sparse_lu.workspace(n)
    assert sparse_lu.analyse(jm, sym)
    assert _natural_fill(jm) == n * (n - 1)
    assert sym[1] + sym[2] == 2 * (n - 1)
    info, sparse, x = _solve_sparse(jm, 2.0, np.arange(1.0, n + 1))
    assert sparse
    np.testing.assert_allclose((np.eye(n) - 2.0 * jm) @ x, np.arange(1.0, n + 1), atol=1e-12)


def test_sparse_lu_cd7_jacobian_fill():
    """On ``cd7`` Jacobians along a trajectory the pivot order halves the factors' non-zeros."""
    import cartsim
    from cartsim.models import kernels
    from cartsim.models.cd7 import Cd7Model
    from cartsim.solvers import solve_batch

    model = Cd7Model()
    pr = model.build(cartsim.Scenario())
    t_eval = np.arange(-5.0, 120.0, 5.0)
    res = solve_batch("cd7", pr.y0, pr.p, t_eval, pr.t0, t_eval[-1], [pr.events], [pr.rules],
                      model.log_mask, "rodas4", atol=model.atol)
    assert res.status[0] == 0
    y, p = res.y[0], pr.p
    sym, vals = sparse_lu.workspace(y.shape[1])
    for row in y[::30]:
        if not np.all(np.isfinite(row)):
            continue
        jm = np.empty((row.size, row.size))
        kernels.jac(kernels.MODEL_CD7, 0.0, row, p, jm)
        assert sparse_lu.analyse(jm, sym)
        assert sym[1] + sym[2] <= 0.6 * _natural_fill(jm)
        b = np.linspace(-1.0, 1.0, row.size)
        for c in (0.01, 1.0, 10.0):
            info, sparse, x = _solve_sparse(jm, c, b)
            assert info == rodas.LU_OK
            a = np.eye(row.size) - c * jm
            np.testing.assert_allclose(a @ x, b, rtol=0, atol=1e-9 * np.abs(a).max())


def test_sparse_lu_falls_back_to_row_pivoting():
    # a zero diagonal pivot fails the threshold test: the dense factorisation (with a row
    # exchange) takes over and the solve is still exact
    jm = np.array([[1.0, 1.0], [1.0, 0.0]])  # I - J = [[0, -1], [-1, 1]]
    info, sparse, x = _solve_sparse(jm, 1.0, np.array([1.0, 2.0]))
    assert info == rodas.LU_OK and not sparse
    np.testing.assert_allclose((np.eye(2) - jm) @ x, [1.0, 2.0])
    # singular and non-finite matrices get the dense factorisation's statuses
    jm = np.eye(3) - np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 1.0]])  # singular
    assert _solve_sparse(jm, 1.0, np.ones(3))[0] == rodas.LU_SINGULAR
    jm = np.zeros((3, 3))
    jm[1, 1] = np.inf
    assert _solve_sparse(jm, 1.0, np.ones(3))[0] == rodas.LU_NONFINITE


def test_sparse_lu_analysis_follows_the_pattern():
    n = 6
    rng = np.random.default_rng(3)
    jm = np.diag(-rng.random(n) - 1.0)
    jm[0, 5] = 2.0
    sym, vals = sparse_lu.workspace(n)
    sparse_lu.analyse(jm, sym)
    before = sym.copy()
    sparse_lu.analyse(jm * 3.0, sym)  # same pattern, other values: kept
    np.testing.assert_array_equal(sym, before)
    jm[5, 0] = 1.0  # a new non-zero: analysed again, and solves stay exact
    sparse_lu.analyse(jm, sym)
    b = rng.standard_normal(n)
    info, sparse, x = _solve_sparse(jm, 0.5, b)
    assert sparse
    np.testing.assert_allclose((np.eye(n) - 0.5 * jm) @ x, b, atol=1e-12)
