"""ParameterSet's fast paths (built once per set) against the slow path they replace."""

import numpy as np
import pytest

from cartsim.parameters.base import ParameterError
from cartsim.parameters.cd7 import CD7_PARAMETERS


def test_vector_equals_the_copied_set_and_checks_the_same_way():
    over = {"rho_max": 0.7, "k_kill": 1.5, "expansion_capacity": 20.0}
    np.testing.assert_array_equal(CD7_PARAMETERS.vector(over),
                                  CD7_PARAMETERS.with_values(over).values())
    np.testing.assert_array_equal(CD7_PARAMETERS.vector(), CD7_PARAMETERS.values())
    for bad in ({"rho_max": -1.0}, {"rho_max": float("nan")}, {"no_such": 1.0}):
        with pytest.raises(ParameterError) as slow:
            CD7_PARAMETERS.with_values(bad)
        with pytest.raises(ParameterError) as fast:
            CD7_PARAMETERS.vector(bad)
        assert str(fast.value) == str(slow.value)


def test_shared_defaults_cannot_be_changed_through_the_fast_paths():
    v = CD7_PARAMETERS.values()
    v[:] = -1.0
    assert CD7_PARAMETERS.values()[0] == CD7_PARAMETERS["rho_max"].value
    with pytest.raises(TypeError):
        CD7_PARAMETERS.value_map()["rho_max"] = 2.0  # read-only
    assert CD7_PARAMETERS.value_map()["rho_max"] == CD7_PARAMETERS["rho_max"].value
