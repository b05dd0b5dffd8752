"""Sweep figures draw the Dataset's numbers (checked on the artists), return their Axes."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from cartsim.plot.sweep import plot_dose_response, plot_sensitivity, plot_window  # noqa: E402


def _grid():
    dose = np.array([1e5, 1e6, 1e7])
    burden = np.array([5.0, 40.0])
    p = np.array([[0.2, 0.1], [0.6, 0.5], [0.9, 0.8]])
    crs = np.array([[0.0, 0.05], [0.1, 0.2], [0.3, 0.5]])
    a = {"units": "1", "long_name": "P"}
    return xr.Dataset(
        {"mrd_neg_cr_d28": (("dose", "burden"), p, a),
         "mrd_neg_cr_d28_ci_lo": (("dose", "burden"), p - 0.1, a),
         "mrd_neg_cr_d28_ci_hi": (("dose", "burden"), p + 0.05, a),
         "crs_g3plus": (("dose", "burden"), crs, a)},
        coords={"dose": ("dose", dose, {"units": "cells/kg"}),
                "burden": ("burden", burden, {"units": "%"})})


def test_window_heatmap_shows_the_endpoint_and_contours():
    ds = _grid()
    ax = plot_window(ds, x="dose", y="burden", levels=[0.1, 0.2])
    mesh = ax.collections[0]
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(2, 3),
                               ds["mrd_neg_cr_d28"].values.T)
    assert ax.get_xscale() == "log"
    assert len(ax.collections) > 1  # the contour set
    with pytest.raises(ValueError, match="exactly two swept dims"):
        plot_window(ds.isel(burden=0))


def test_dose_response_draws_lines_and_ci_bands():
    ds = _grid()
    ax = plot_dose_response(ds, ["mrd_neg_cr_d28"], x="dose", hue="burden")
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[1].get_ydata(), ds["mrd_neg_cr_d28"].values[:, 1])
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(ds["mrd_neg_cr_d28_ci_lo"].values[:, 0].min())
    assert band.max() == pytest.approx(ds["mrd_neg_cr_d28_ci_hi"].values[:, 0].max())
    with pytest.raises(ValueError, match="at most one other"):
        plot_dose_response(ds, ["mrd_neg_cr_d28"], x="dose")


def test_sensitivity_bars_are_sorted_by_total_index():
    ds = xr.Dataset({k: (("endpoint", "parameter"), np.array([v])) for k, v in {
        "S1": [0.3, 0.0, 0.5], "S1_conf": [0.01] * 3, "ST": [0.4, 0.1, 0.6],
        "ST_conf": [0.01] * 3}.items()}, coords={"endpoint": ["y"], "parameter": ["a", "b", "c"]})
    ax = plot_sensitivity(ds)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "a", "c"]
    widths = sorted(p.get_width() for p in ax.patches)
    assert widths[-1] == pytest.approx(0.6)


def test_morris_bars_show_mu_star_sorted():
    ds = xr.Dataset({k: (("endpoint", "parameter"), np.array([v])) for k, v in {
        "mu": [1.0, -5.0], "mu_star": [1.0, 5.0], "sigma": [0.5, 0.1],
        "mu_star_conf": [0.1, 0.2]}.items()}, coords={"endpoint": ["y"], "parameter": ["a", "b"]})
    ax = plot_sensitivity(ds, "y")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert [p.get_width() for p in ax.patches] == [1.0, 5.0]
    with pytest.raises(ValueError, match="not analysed"):
        plot_sensitivity(ds, "z")
