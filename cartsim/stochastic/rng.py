r"""Per-replicate random numbers inside compiled code: xoshiro256** and the samplers on it.

Each replicate owns a 4-word ``uint64`` state (seeded from
``numpy.random.SeedSequence(seed, spawn_key=(STREAM_DOMAIN, i)).generate_state(4)``, see
:mod:`cartsim.randomness`), so a replicate's
draws depend on its seed only, never on which thread runs it or in which order
(NumPy's global generator inside ``numba.prange`` is per-thread and would not be
reproducible across thread counts).

* Generator: xoshiro256** 1.0 (Blackman & Vigna 2021 ACM TOMS 47:36), 2^256 - 1 period;
  doubles from the top 53 bits.
* Normal: Box-Muller. Exponential: inversion.
* Poisson(mu): inversion for mu < 10; PTRS transformed rejection (Hoermann 1993
  Insurance Math Econ 12:39, as in NumPy) for 10 <= mu <= ``langevin``; above that the
  normal approximation ``round(mu + sqrt(mu) Z)`` clipped at 0 (chemical Langevin regime,
  skewness 1/sqrt(mu)).
* Binomial(n, p): Bernoulli trials for n <= 64, geometric waiting times for n p < 30
  (exact), normal approximation clipped to [0, n] beyond (used only for bulk thinning of
  large populations by dose events).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from cartsim.randomness import STOCHASTIC, realisation_sequence

__all__ = ["seed_states", "next_u64", "uniform", "normal", "exponential", "poisson",
           "binomial", "stochastic_round"]


STREAM_DOMAIN = STOCHASTIC
"""First spawn-key word of the realisation streams (:data:`cartsim.randomness.STOCHASTIC`):
keeps them apart from the other children of the run seed (cohort 0, death 1)."""


def seed_states(seed: int, n: int, offset: int = 0) -> np.ndarray:
    """``uint64[n, 4]`` xoshiro states of streams ``offset .. offset+n-1`` of one seed.

    Stream ``i`` is ``numpy.random.SeedSequence(seed, spawn_key=(STREAM_DOMAIN, i))``
    (:func:`cartsim.randomness.realisation_sequence`),
    i.e. child ``i`` of ``SeedSequence(seed, spawn_key=(STREAM_DOMAIN,)).spawn(...)``, so
    a chunk of a large batch gets the same streams as the whole batch.
    """
    out = np.empty((int(n), 4), dtype=np.uint64)
    for i in range(int(n)):
        ch = realisation_sequence(seed, int(offset) + i)
        st = ch.generate_state(4, dtype=np.uint64)
        if not st.any():  # the all-zero state is xoshiro's only fixed point
            st[0] = np.uint64(0x9E3779B97F4A7C15)
        out[i] = st
    return out


@nb.njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@nb.njit(cache=True)
def next_u64(s):
    """Next 64-bit output of xoshiro256** (advances the state ``s``, uint64[4])."""
    result = _rotl(s[1] * np.uint64(5), 7) * np.uint64(9)
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@nb.njit(cache=True)
def uniform(s):
    """Uniform double in [0, 1) (53 random bits)."""
    return float(next_u64(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@nb.njit(cache=True)
def normal(s):
    """Standard normal (Box-Muller, one of the pair)."""
    u1 = 1.0 - uniform(s)  # (0, 1]
    u2 = uniform(s)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@nb.njit(cache=True)
def exponential(s):
    """Exponential with rate 1."""
    return -math.log(1.0 - uniform(s))


@nb.njit(cache=True)
def _poisson_ptrs(s, lam):
    slam = math.sqrt(lam)
    loglam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        u = uniform(s) - 0.5
        v = uniform(s)
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return k
        if k < 0.0 or (us < 0.013 and v > us):
            continue
        if (math.log(v) + math.log(invalpha) - math.log(a / (us * us) + b)
                <= -lam + k * loglam - math.lgamma(k + 1.0)):
            return k


@nb.njit(cache=True)
def poisson(s, mu, langevin):
    """Poisson(mu) as a float holding a whole number (see the module notes)."""
    if not mu > 0.0:
        return 0.0
    if mu < 10.0:
        u = uniform(s)
        p = math.exp(-mu)
        cum = p
        k = 0.0
        while u > cum and k < 1000.0:
            k += 1.0
            p *= mu / k
            cum += p
        return k
    if mu <= langevin:
        return _poisson_ptrs(s, mu)
    return max(0.0, math.floor(mu + math.sqrt(mu) * normal(s) + 0.5))


@nb.njit(cache=True)
def binomial(s, n, p):
    """Binomial(n, p) for a whole-number float ``n >= 0`` and ``0 <= p <= 1``."""
    if n <= 0.0 or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - binomial(s, n, 1.0 - p)
    if n <= 64.0:
        k = 0.0
        for _ in range(int(n)):
            if uniform(s) < p:
                k += 1.0
        return k
    if n * p < 30.0:
        # waiting times between successes are geometric: exact and O(n p)
        lq = math.log1p(-p)
        k = 0.0
        pos = 0.0
        while True:
            pos += math.floor(math.log(1.0 - uniform(s)) / lq) + 1.0
            if pos > n:
                return k
            k += 1.0
    m = n * p
    sd = math.sqrt(m * (1.0 - p))
    return min(n, max(0.0, math.floor(m + sd * normal(s) + 0.5)))


@nb.njit(cache=True)
def stochastic_round(s, v):
    """``floor(v)`` plus a Bernoulli(frac(v)) draw: a whole number with mean ``v`` (v >= 0)."""
    if not v > 0.0:
        return 0.0
    f = math.floor(v)
    if uniform(s) < v - f:
        f += 1.0
    return f
