"""Fixtures of the plot tests (helpers live in ``plot_helpers``, importable by name)."""

import matplotlib
import pytest
from plot_helpers import synthetic_dataset, synthetic_endpoints

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def no_show(monkeypatch):
    """Plot functions must never call ``plt.show()`` / ``Figure.show()``: make them fail."""
    import matplotlib.figure
    import matplotlib.pyplot as plt

    def refuse(*args, **kwargs):
        raise AssertionError("a cartsim.plot function called show()")

    monkeypatch.setattr(plt, "show", refuse)
    monkeypatch.setattr(matplotlib.figure.Figure, "show", refuse)
    yield
    plt.close("all")


@pytest.fixture
def ds():
    return synthetic_dataset()


@pytest.fixture
def ep():
    return synthetic_endpoints()
