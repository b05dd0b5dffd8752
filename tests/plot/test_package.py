"""cartsim.plot is light to import and exports functions lazily; the trial report's KM figure
still works through it."""

import subprocess
import sys

import pytest

import cartsim.plot as cplot


def test_every_lazy_name_resolves_to_a_function_or_class():
    for name in cplot.__all__:
        obj = getattr(cplot, name)
        assert callable(obj) and not isinstance(obj, type(sys)), name  # not a submodule
    assert sorted(cplot.__all__) == dir(cplot)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cplot.nope  # noqa: B018


def test_import_does_not_load_matplotlib():
    code = ("import sys, cartsim, cartsim.plot; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'; "
            "cartsim.plot.trajectory; assert 'matplotlib.pyplot' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_report_km_figure_still_draws(ep):
    from cartsim.clinical.settings import MONTH_DAYS
    from cartsim.plot.km import survival_curves
    from cartsim.reporting.km_plot import km_figure

    fig = km_figure(survival_curves(ep), scale=MONTH_DAYS, title="t")
    ax, risk = fig.axes
    assert risk.get_title() == "number at risk"
    assert [t.get_text() for t in risk.get_yticklabels()] == ["PFS", "OS"]
    assert ax.get_ylabel() == "probability"


def test_new_figures_avoid_pyplot_when_it_is_not_imported(ds, monkeypatch):
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    before = plt.get_fignums()
    monkeypatch.delitem(sys.modules, "matplotlib.pyplot")  # as in a batch job
    ax = cplot.trajectory(ds, "il6")
    fig = cplot.trajectories(ds, ["il6", "marrow_blast_pct"])
    monkeypatch.undo()
    assert type(ax.figure.canvas) is FigureCanvasAgg and type(fig.canvas) is FigureCanvasAgg
    assert plt.get_fignums() == before  # nothing registered with pyplot


def test_new_figures_use_pyplot_in_interactive_sessions(ds):
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    cplot.trajectory(ds, "il6")
    assert len(plt.get_fignums()) == before + 1  # shows inline in a notebook
