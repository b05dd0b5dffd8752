"""Where every random number of a run comes from: numbered streams of the run's seed.

One scheme: a stream is ``numpy.random.SeedSequence(seed, spawn_key=KEY)`` for the run
``seed`` (``Scenario.seed``, ``population.seed`` or a task's ``seed``) and a fixed
``KEY``. Distinct keys give statistically independent streams (SeedSequence mixes the key
into the entropy pool), and a stream depends on its seed and key only: never on threads,
chunk sizes or the order in which patients are simulated.

=====================  ===========================  ==========================================
stream                 spawn key                    used by
=====================  ===========================  ==========================================
design (root)          ``()``                       sweep/sensitivity design points
                                                    (:func:`cartsim.sweep.axes.sample_points`)
cohort                 ``(COHORT,)`` = ``(0,)``     the virtual cohort's covariates and random
                                                    effects (:func:`cohort_rng`; the draw
                                                    spawns one child per block inside)
death                  ``(DEATH,)`` = ``(1,)``      the death model's per-patient uniforms
                                                    (:func:`death_seed`; patient ``k`` takes
                                                    the ``k``-th draw)
stochastic replicate   ``(STOCHASTIC, j)``          realisation ``j = patient * replicates +
                                                    replicate`` of the stochastic and agent
                                                    engines (:func:`realisation_sequence`)
=====================  ===========================  ==========================================

The death stream is the same through every front door: :func:`cartsim.run_trial`,
:func:`cartsim.run_sweep` and :func:`cartsim.endpoints` of a :func:`cartsim.simulate`
result (which derives it from the Dataset's ``seed`` attribute) give a patient with the
same index and run seed the same death.

Streams outside this table, with their own seeds: the fitting's chains
(``FitOptions.random_state``, spawned children) and the calibration's replicate and
bootstrap draws (:mod:`cartsim.calibration`, ``default_rng`` of the calibration's seed).
"""

from __future__ import annotations

import numpy as np

__all__ = ["COHORT", "DEATH", "STOCHASTIC", "cohort_rng", "death_seed", "design_rng",
           "generator", "realisation_sequence", "seed_sequence", "stream_seeds"]

COHORT = 0
"""Spawn key of the cohort stream (child 0 of the run seed)."""
DEATH = 1
"""Spawn key of the death stream (child 1 of the run seed)."""
STOCHASTIC = 0x5707C
"""First spawn-key word of the stochastic engines' realisation streams (keeps them apart
from the other children of the run seed)."""


def seed_sequence(seed: int, *key: int) -> np.random.SeedSequence:
    """The stream ``key`` of the run ``seed``: ``SeedSequence(seed, spawn_key=key)``.

    ``seed_sequence(s, 0)`` equals ``SeedSequence(s).spawn(2)[0]``: spawned children and
    keyed streams are the same thing.
    """
    return np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key))


def generator(seed: int, *key: int) -> np.random.Generator:
    """A NumPy ``Generator`` (PCG64) on the stream ``key`` of ``seed``."""
    return np.random.default_rng(seed_sequence(seed, *key))


def design_rng(seed: int) -> np.random.Generator:
    """The design stream: the root of ``seed`` (``numpy.random.default_rng(seed)``)."""
    return generator(seed)


def cohort_rng(seed: int) -> np.random.Generator:
    """The cohort stream of the run ``seed``."""
    return generator(seed, COHORT)


def death_seed(seed: int) -> int:
    """The seed of the death draws of the run ``seed`` (a non-negative 63-bit integer):
    ``numpy.random.default_rng(death_seed(seed))`` gives patient ``k`` its ``k``-th
    uniform (:func:`cartsim.clinical.survival.exponential_thresholds`)."""
    return int(seed_sequence(seed, DEATH).generate_state(1, np.uint64)[0] >> 1)


def stream_seeds(seed: int) -> tuple[np.random.Generator, int]:
    """The cohort generator and the death-model seed of one run seed."""
    return cohort_rng(seed), death_seed(seed)


def realisation_sequence(seed: int, j: int) -> np.random.SeedSequence:
    """The stream of stochastic realisation ``j`` of the run ``seed``."""
    return seed_sequence(seed, STOCHASTIC, j)
