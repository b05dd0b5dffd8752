"""The named random streams of a run (cartsim.randomness): fixed keys, independent streams."""

from __future__ import annotations

import numpy as np

from cartsim import randomness as R


def test_streams_are_the_spawned_children_they_replace():
    # the keys are a contract: seeded results (trials, calibration) depend on them
    for seed in (0, 11, 2**63 + 5):
        cohort, death = np.random.SeedSequence(seed).spawn(2)
        np.testing.assert_array_equal(R.cohort_rng(seed).random(4),
                                      np.random.default_rng(cohort).random(4))
        assert R.death_seed(seed) == int(death.generate_state(1, np.uint64)[0] >> 1)
        np.testing.assert_array_equal(
            R.realisation_sequence(seed, 3).generate_state(4),
            np.random.SeedSequence(seed, spawn_key=(0x5707C, 3)).generate_state(4))
        np.testing.assert_array_equal(R.design_rng(seed).random(4),
                                      np.random.default_rng(seed).random(4))


def test_streams_differ_from_each_other_and_between_seeds():
    draws = [R.cohort_rng(7).random(8), R.generator(R.death_seed(7)).random(8),
             R.design_rng(7).random(8), R.cohort_rng(8).random(8),
             np.random.default_rng(R.realisation_sequence(7, 0)).random(8)]
    for i in range(len(draws)):
        for j in range(i):
            assert not np.allclose(draws[i], draws[j])


def test_death_seed_is_a_valid_numpy_seed():
    assert all(0 <= R.death_seed(s) < 2**63 for s in range(50))
