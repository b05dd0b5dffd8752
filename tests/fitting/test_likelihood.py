"""Error model and M3 likelihood against independent numerical computation."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from cartsim.fitting.likelihood import loglik_terms
from cartsim.fitting.transforms import Transform, default_transform


def density_y(y, f, sp, sa):
    """Density of Y (data scale) for ln Y ~ N(ln f, W^2): log-normal, written out."""
    w = math.sqrt(sp ** 2 + (sa / f) ** 2)
    z = (math.log(y) - math.log(f)) / w
    return math.exp(-0.5 * z * z) / (y * w * math.sqrt(2 * math.pi))


@pytest.mark.parametrize("f,lloq,sp,sa", [(100.0, 50.0, 0.5, 0.0), (20.0, 50.0, 0.3, 5.0),
                                          (1e4, 50.0, 0.8, 0.0), (60.0, 50.0, 0.1, 20.0)])
def test_m3_equals_integral_of_density_below_lloq(f, lloq, sp, sa):
    # P(Y < LLOQ) by quadrature of the data-scale density (substituting u = ln y for accuracy)
    p, _ = integrate.quad(lambda u: density_y(math.exp(u), f, sp, sa) * math.exp(u),
                          -700.0, math.log(lloq), epsabs=1e-14, epsrel=1e-12, limit=200)
    got = loglik_terms(np.array([f]), np.array([lloq]), np.array([True]), sp, sa)[0]
    assert got == pytest.approx(math.log(p), rel=1e-8, abs=1e-10)


def test_uncensored_term_is_normal_logpdf_of_log_y():
    f, y, sp, sa = 200.0, 150.0, 0.4, 30.0
    w = math.sqrt(sp ** 2 + (sa / f) ** 2)
    want = stats.norm.logpdf(math.log(y), loc=math.log(f), scale=w)
    assert loglik_terms(np.array([f]), np.array([y]), np.array([False]), sp, sa)[0] == \
        pytest.approx(want, rel=1e-12)


def test_failed_prediction_gives_minus_inf_and_zero_prediction_is_far_below_lloq():
    ll = loglik_terms(np.array([np.nan, 0.0]), np.array([10.0, 10.0]), np.array([False, True]),
                      0.5)
    assert ll[0] == -np.inf
    assert ll[1] == pytest.approx(0.0, abs=1e-12)  # P(Y < LLOQ) = 1 when nothing is left


@pytest.mark.parametrize("tf", [Transform("log", 1e-3, 10.0), Transform("logit", 0.0, 1.0),
                                Transform("logit", -2.0, 5.0), Transform("none", -1.0, 1.0)])
def test_transform_roundtrip_and_jacobian(tf):
    theta = np.array([0.2, 0.5, 0.9])
    phi = tf.to_search(theta)
    np.testing.assert_allclose(tf.to_model(phi), theta, rtol=1e-12)
    h = 1e-6
    fd = (tf.to_model(phi + h) - tf.to_model(phi - h)) / (2 * h)
    np.testing.assert_allclose(tf.jacobian(phi), fd, rtol=1e-6)


def test_default_transform_choice():
    assert default_transform(0.1, 5.0).kind == "log"
    assert default_transform(0.0, 1.0).kind == "logit"
    assert default_transform(-np.inf, np.inf).kind == "none"
