"""The modeler's sweep figures read like the rest (issue 16, item 9): clinical names with
units, the therapeutic window drawn, uncertainty bands; checked on the artists."""

import numpy as np
import pytest
import xarray as xr

from cartsim.plot.sweep import (
    dose_window,
    parameter_label,
    plot_dose_response,
    plot_sensitivity,
    plot_window,
)

P = "proportion: "


def _grid():
    """A dose x burden sweep with a population per point (as run_sweep writes it)."""
    dose = np.array([1e5, 1e6, 1e7])
    burden = np.array([5.0, 40.0, 80.0])
    eff = np.array([[0.5, 0.4, 0.2], [0.7, 0.6, 0.4], [0.9, 0.8, 0.6]])
    tox = np.array([[0.0, 0.05, 0.1], [0.05, 0.1, 0.3], [0.1, 0.3, 0.5]])
    dims = ("regimen.car_dose_per_kg", "patient.marrow_blast_pct")
    return xr.Dataset(
        {"mrd_neg_cr_d28": (dims, eff, {"units": "1", "long_name": P + "flow-MRD-negative "
                                        "CR/CRi at day 28 (response_d28 >= 1)"}),
         "crs_g3plus": (dims, tox, {"units": "1", "long_name": P + "SURROGATE CRS grade >= 3 "
                                    "(crs_grade >= 3; not an ASTCT grade)"}),
         "il6_peak": (dims, tox * 1e3, {"units": "pg/mL",
                                        "long_name": "peak plasma IL-6 after day 0"}),
         "n_evaluable": (dims, np.full((3, 3), 20), {"units": "1"})},
        coords={dims[0]: (dims[0], dose, {"units": "cells/kg", "long_name": "CAR+ cells "
                                          "infused per kg body weight"}),
                dims[1]: (dims[1], burden, {"units": "%", "long_name": "marrow blasts at "
                                            "lymphodepletion"})})


def test_window_draws_the_window_cells_and_labels_clinically():
    ds = _grid()
    ax = plot_window(ds, window=(0.6, 0.2))
    fig = ax.figure
    hatched = [c for c in ax.collections if c.get_gid() == "therapeutic_window"]
    assert len(hatched) == 1
    inside = (ds["mrd_neg_cr_d28"] >= 0.6) & (ds["crs_g3plus"] <= 0.2)
    assert len(hatched[0].get_paths()) == int(inside.sum()) == 3
    assert hatched[0].get_hatch()
    outline = [c for c in ax.collections if c.get_gid() == "therapeutic_window_outline"]
    assert outline and len(outline[0].get_segments()) > 0
    assert ax.get_xlabel() == "CAR+ cells infused per kg body weight (cells/kg)"
    assert ax.get_ylabel() == "marrow blasts at lymphodepletion (%)"
    assert "P(MRD-negative CR/CRi at day 28)" in ax.get_title()
    assert "mrd_neg_cr_d28" not in ax.get_title()
    # every axes of the figure draws something: the heat map and its colour bar, no empty panel
    assert all(a.collections or a.images for a in fig.axes)
    with pytest.raises(ValueError, match="needs contour"):
        plot_window(ds, contour=None, window=(0.6, 0.2))


def test_window_says_when_there_is_none():
    ax = plot_window(_grid(), window=(0.99, 0.0))
    hatched = [c for c in ax.collections if c.get_gid() == "therapeutic_window"][0]
    assert len(hatched.get_paths()) == 0
    assert any("no therapeutic window" in t.get_text() for t in ax.texts)


def test_window_colour_bar_has_units():
    ds = _grid()
    ax = plot_window(ds, "il6_peak", None)
    cbar = [a for a in ax.figure.axes if a is not ax][0]
    assert cbar.get_ylabel() == "peak IL-6 (pg/mL)"


def test_dose_response_band_from_patients_per_point_and_window():
    from cartsim.stats import binomial_ci

    ds = _grid().isel({"patient.marrow_blast_pct": 1})  # no stored bounds: computed
    ax = plot_dose_response(ds, ["mrd_neg_cr_d28", "crs_g3plus"], window=(0.6, 0.2))
    bands = [c for c in ax.collections if c.get_label().endswith("patients per point)")]
    assert len(bands) == 2
    lo, hi = binomial_ci(12, 20)  # the middle dose: 0.6 of 20 patients
    ys = bands[0].get_paths()[0].vertices[:, 1]
    assert np.isclose(ys, lo).any() and np.isclose(ys, hi).any()
    spans = [p for p in ax.patches if p.get_gid() == "therapeutic_window"]
    ok = dose_window(ds, "regimen.car_dose_per_kg", window=(0.6, 0.2))
    assert ok.tolist() == [False, True, False] and len(spans) == 1
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "P(MRD-negative CR/CRi at day 28)"
    assert any(t.startswith("therapeutic window") for t in labels)
    assert ax.get_xlabel() == "CAR+ cells infused per kg body weight (cells/kg)"


def test_dose_response_without_population_says_there_is_no_band():
    ds = _grid().isel({"patient.marrow_blast_pct": 1}).drop_vars("n_evaluable")
    ax = plot_dose_response(ds, ["mrd_neg_cr_d28"])
    assert not ax.collections
    assert "no uncertainty band" in ax.get_title()


def test_tornado_tick_labels_are_clinical_names_with_units():
    ds = xr.Dataset({k: (("endpoint", "parameter"), np.array([v])) for k, v in {
        "S1": [0.3, 0.0, 0.5], "S1_conf": [0.01] * 3, "ST": [0.4, 0.1, 0.6],
        "ST_conf": [0.01] * 3}.items()},
        coords={"endpoint": ["mrd_neg_cr_d28"],
                "parameter": ["model.params.k_kill", "regimen.car_dose_per_kg",
                              "model.params.delta_e"]},
        attrs={"units_mrd_neg_cr_d28": "1", "model": "cd7"})
    ax = plot_sensitivity(ds)
    ticks = [t.get_text().replace("\n", " ") for t in ax.get_yticklabels()]
    assert ticks == ["CAR+ cells infused per kg body weight (cells/kg)",
                     "maximal per-target killing rate by CAR-T effectors (1/day)",
                     "death rate of effector CAR-T cells (1/day)"]
    assert not any("model.params" in t for t in ticks)
    assert ax.get_title() == "P(MRD-negative CR/CRi at day 28)"
    assert parameter_label("not.a.name") == "not.a.name"
