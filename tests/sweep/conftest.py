"""Shared fixtures of the sweep tests."""

import pytest

from cartsim.scenario import Scenario


@pytest.fixture(scope="session")
def base():
    """The default scenario (one year, daily output: the grid the 12-month endpoints need)."""
    return Scenario()
