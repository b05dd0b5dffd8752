"""The observed information of an individual fit, robust to the finite-difference step.

Independent truth: closed-form negative log-likelihoods whose Hessian at the minimum is known
analytically, built so that the fixed central-difference step of before (5e-3 search units)
gives an information that is not positive definite: a stiff direction (curvature 2e4, with
the higher derivatives of ``cosh``) beside a weak one (curvature 2), as the CAR-T expansion
and death rates sit beside the blast burden in the ``cd7`` fit of the real relapsing PR1.
"""

import math

import numpy as np
import pytest

from cartsim.fitting.objective import (
    HESSIAN_LEVELS,
    HESSIAN_MARGIN,
    fd_hessian,
    observed_information,
)

A, K, B, C = 25.0, 20.0, 1.0, 1e-2
H0 = 5e-3  # IndividualFit's default hessian_step (search units)


def stiff_and_weak(X, b=B):
    """``A (cosh(K (x1 - x2)) - 1) + b/2 (x1 + x2)^2 + C/2 x3^2 + x3^4 / 2``, minimum at 0."""
    X = np.atleast_2d(X)
    u, w = X[:, 0] - X[:, 1], X[:, 0] + X[:, 1]
    return A * (np.cosh(K * u) - 1) + 0.5 * b * w ** 2 + 0.5 * C * X[:, 2] ** 2 + 0.5 * X[:, 2] ** 4


def analytic_hessian(b=B):
    s = A * K * K
    return np.array([[s + b, -s + b, 0.0], [-s + b, s + b, 0.0], [0.0, 0.0, C]])


def test_fixed_step_fails_where_the_ladder_recovers_the_analytic_standard_errors():
    """Along the weak direction (1, 1)/sqrt(2) the central differences at step h give
    ``2 B - A K^4 h^2 / 4`` (Taylor series of cosh): -23 at h = 5e-3, where the truth is 2.
    The ladder's Richardson estimate gives the analytic standard errors within 1% (the
    parameter x3, 100x less curved than the weak direction, included)."""
    x = np.zeros(3)
    v = np.array([1.0, 1.0, 0.0]) / math.sqrt(2)
    fixed = fd_hessian(stiff_and_weak, x, H0)
    assert v @ fixed @ v == pytest.approx(2 * B - A * K ** 4 * H0 ** 2 / 4, rel=0.01)
    assert np.linalg.eigvalsh(fixed)[0] < 0  # the old verdict: se_not_finite

    info = observed_information(stiff_and_weak, x, H0)
    assert info.positive and info.richardson
    assert info.min_eig > HESSIAN_MARGIN * info.error
    truth = analytic_hessian()
    se_true = np.sqrt(np.diag(np.linalg.inv(truth)))
    se = np.sqrt(np.diag(np.linalg.inv(info.hessian)))
    np.testing.assert_allclose(se, se_true, rtol=0.01)
    assert v @ info.hessian @ v == pytest.approx(2 * B, rel=0.02)


def test_positive_information_at_the_first_step_is_kept_as_it_was():
    """A well-conditioned minimum (weak curvature 2e3 instead of 2): the first step's
    Hessian is positive definite and is returned unchanged, without a ladder."""
    f = lambda X: stiff_and_weak(X, b=1e3)  # noqa: E731
    info = observed_information(f, np.zeros(3), H0)
    assert info.positive and not info.richardson and info.steps == (H0,)
    np.testing.assert_array_equal(info.hessian, fd_hessian(f, np.zeros(3), H0))
    np.testing.assert_allclose(info.hessian, analytic_hessian(1e3), rtol=0.02)


@pytest.mark.parametrize("noise", [0.0, 1e-9])
def test_a_flat_direction_is_never_positive_and_is_named(noise):
    """The weak direction made exactly flat (b = 0: the nll depends on x1 - x2 only): no step
    of the ladder may call the information positive definite, with or without round-off-like
    noise of 1e-9 on every value (a deterministic function of the point, as an ODE solve's
    error is); the direction reported is (1, 1, 0)/sqrt(2)."""

    def f(X):
        X = np.atleast_2d(X)
        return stiff_and_weak(X, b=0.0) + noise * np.sin(1e7 * X @ [1.0, math.sqrt(2), math.pi])

    info = observed_information(f, np.zeros(3), H0)
    assert not info.positive
    assert len(info.steps) == HESSIAN_LEVELS  # the whole ladder was tried
    np.testing.assert_allclose(np.abs(info.weak), [1 / math.sqrt(2), 1 / math.sqrt(2), 0],
                               atol=0.05)


def test_a_parameter_without_effect_is_named_and_held_fixed_ones_are_left_out():
    """x3 has no effect at all (zero curvature): not positive, x3 named. Held fixed (on a
    bound, ``free`` False), it leaves the block of x1, x2, which is positive definite."""

    def f(X):
        return stiff_and_weak(np.column_stack([X[:, :2], 0 * X[:, 2]]))

    X = np.zeros(3)
    info = observed_information(f, X, H0)
    assert not info.positive
    np.testing.assert_allclose(np.abs(info.weak), [0, 0, 1], atol=1e-12)
    info = observed_information(f, X, H0, free=np.array([True, True, False]))
    assert info.positive
    sub = analytic_hessian()[:2, :2]
    np.testing.assert_allclose(np.sqrt(np.diag(np.linalg.inv(info.hessian[:2, :2]))),
                               np.sqrt(np.diag(np.linalg.inv(sub))), rtol=0.01)
