"""Trajectory and cohort plots: labels with units, log scales, regimen marks, observed data."""

import matplotlib.colors as mcolors
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from plot_helpers import check_baseline, deterministic_style

import cartsim.plot as cplot
from cartsim.plot._common import DAY_LABEL


def _lines_with_marker(ax, marker):
    return [ln for ln in ax.get_lines() if ln.get_marker() == marker]


def test_trajectory_labels_units_and_log_scale(ds):
    ax = cplot.trajectory(ds, "car_copies_per_ug")
    assert isinstance(ax, Axes)
    assert ax.get_xlabel() == DAY_LABEL
    assert ax.get_ylabel() == "CAR transgene (qPCR) (copies/\u00b5g)"
    assert ax.get_yscale() == "log"  # spans ~8 decades
    assert len([ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]) == 3  # one per patient
    lo, hi = ax.get_ylim()
    assert lo >= 1.0 and hi > ds["car_copies_per_ug"].max()  # floored at 1 copy/ug


def test_trajectory_linear_when_values_span_less_than_two_decades(ds):
    ax = cplot.trajectory(ds, "anc_per_ul")
    assert ax.get_yscale() == "linear"
    assert "(cells/\u00b5L)" in ax.get_ylabel()
    with pytest.raises(ValueError, match="yscale"):
        cplot.trajectory(ds, "anc_per_ul", yscale="logarithmic")


def test_regimen_is_marked_from_the_config_attribute(ds):
    ax = cplot.trajectory(ds, "il6", xlim=(-6, 30))
    spans = [p for p in ax.patches]  # axvspan of lymphodepletion
    assert len(spans) == 1
    x0 = spans[0].get_x()
    assert (x0, x0 + spans[0].get_width()) == (-5.0, -2.0)
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert [ln.get_xdata()[0] for ln in dashed] == [0.0]
    assert {t.get_text().strip() for t in ax.texts} >= {"CAR-T"}


def test_regimen_override_marks_split_dosing_and_hsct(ds):
    reg = {"ld_days": [-6, -5], "car_days": [0, 3], "hsct_day": 60}
    ax = cplot.trajectory(ds, "il6", regimen=reg)
    days = sorted(ln.get_xdata()[0] for ln in ax.get_lines() if ln.get_linestyle() in ("--", ":"))
    assert days == [0.0, 3.0, 60.0]


def test_observed_blq_points_are_drawn_censored_at_the_lloq(ds):
    obs = cplot.observed_data(time=[2, 7, 14, 28, 90], value=[np.nan, 3e4, 6e4, 20.0, 900.0],
                              analyte="car_copies_per_ug", units="copies/ug", lloq=50.0)
    assert obs["blq"].values.tolist() == [True, False, False, True, False]
    ax = cplot.trajectory(ds.isel(patient=[0]), "car_copies_per_ug", observed=obs)
    (blq,) = _lines_with_marker(ax, "v")
    assert blq.get_xdata().tolist() == [2.0, 28.0]
    assert blq.get_ydata().tolist() == [50.0, 50.0]  # at the LLOQ, not at the value
    assert mcolors.to_rgba(blq.get_markerfacecolor())[3] == 0  # open (censored) marker
    (quantified,) = _lines_with_marker(ax, "o")
    assert quantified.get_ydata().tolist() == [3e4, 6e4, 900.0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "observed, below LLOQ" in labels and any("LLOQ 50" in s for s in labels)


def test_observed_data_in_other_units_is_an_error(ds):
    obs = cplot.observed_data([7.0], [3.0], "car_copies_per_ug", "copies/ng", lloq=0.05)
    with pytest.raises(ValueError, match="copies/ng"):
        cplot.trajectory(ds, "car_copies_per_ug", observed=obs)


def test_observed_data_from_a_dataframe():
    import pandas as pd

    df = pd.DataFrame({"time": [1.0, 5.0], "value": [10.0, 1.0], "analyte": "il6",
                       "units": "pg/mL", "lloq": 2.0})
    obs = cplot.as_observed(df)
    assert obs["blq"].values.tolist() == [False, True]
    with pytest.raises(ValueError, match="lacks the column"):
        cplot.as_observed(df.drop(columns="units"))


def test_trajectories_one_panel_per_variable(ds):
    variables = ["car_copies_per_ug", "marrow_blast_pct", "il6"]
    fig = cplot.trajectories(ds, variables, ncols=3, labels=["a", "b", "c"])
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_ylabel() for ax in axes] == [
        "CAR transgene (qPCR) (copies/\u00b5g)", "marrow blasts (%)", "IL-6 (pg/mL)"]
    assert [ax.get_yscale() for ax in axes] == ["log", "log", "log"]
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="one label per patient"):
        cplot.trajectories(ds, variables, labels=["a"])


def test_missing_variable_names_it(ds):
    with pytest.raises(ValueError, match="car_total"):
        cplot.trajectory(ds, "car_total")


def test_cohort_bands_median_and_spaghetti(ds):
    ax = cplot.cohort(ds, "car_copies_per_ug", spaghetti=2, label_text="A")
    assert ax.get_yscale() == "log"
    assert "(copies/\u00b5g)" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["A: 5-95th percentile", "A: 25-75th percentile", "A: median (n=3)"]
    median = [ln for ln in ax.get_lines() if ln.get_linewidth() == 2.0][0]
    np.testing.assert_allclose(median.get_ydata(), ds["car_copies_per_ug"].median("patient"))
    thin = [ln for ln in ax.get_lines() if ln.get_linewidth() == 0.6]
    assert len(thin) == 2


def test_cohort_ignores_failed_patients(ds):
    bad = ds.copy(deep=True)
    bad["il6"][1, 40:] = np.nan  # a failed solve is NaN from the failure on
    ax = cplot.cohort(bad, "il6", spaghetti=0)
    assert "median (n=3)" in [t.get_text() for t in ax.get_legend().get_texts()]
    median = [ln for ln in ax.get_lines() if ln.get_linewidth() == 2.0][0]
    assert np.isfinite(median.get_ydata()).all()


def test_draws_into_a_given_axes_without_pyplot(ds):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    assert cplot.trajectory(ds, "il6", ax) is ax
    assert cplot.cohort(ds, "il6", ax) is ax


def test_trajectory_baseline(ds, tmp_path):
    obs = cplot.observed_data(time=[2, 7, 14, 28, 60, 100], value=[np.nan, 3e4, 6e4, 9e3,
                                                                    20.0, 900.0],
                              analyte="car_copies_per_ug", units="copies/ug", lloq=50.0)
    with deterministic_style():
        fig = Figure(figsize=(5, 3.2), layout="constrained")
        cplot.trajectory(ds.isel(patient=[0]), "car_copies_per_ug", fig.add_subplot(),
                         observed=obs, xlim=(-6, 120))
        check_baseline(fig, "trajectory_observed", tmp_path)


def test_cohort_baseline(ds, tmp_path):
    with deterministic_style():
        fig = Figure(figsize=(5, 3.2), layout="constrained")
        cplot.cohort(ds, "marrow_blast_pct", fig.add_subplot(), xlim=(-6, 120))
        check_baseline(fig, "cohort_blasts", tmp_path)
