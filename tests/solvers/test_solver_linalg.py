"""Dense LU with partial pivoting and sparse triangular solves (``rodas.lu_factor``)."""

import numpy as np
import pytest

from cartsim.solvers import rodas


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
