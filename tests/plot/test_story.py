"""The patient-story figure: its panels, units, thresholds and the surrogate CRS band."""

import numpy as np
import pytest
from matplotlib.figure import Figure
from plot_helpers import check_baseline, deterministic_style

import cartsim.plot as cplot


def _panels(fig):
    return {ax.get_label(): ax for ax in fig.axes}


def test_patient_story_panels_and_units(ds):
    fig = cplot.patient_story(ds, patient=1, xlim=(-6, 100))
    assert isinstance(fig, Figure)
    p = _panels(fig)
    assert set(p) >= {"ld", "text", "car", "blasts", "tcells", "cytokines", "crs"}
    assert p["ld"].get_ylabel() == "plasma (mg/L)" and p["ld"].get_xlim() == (-6.0, 1.0)
    assert p["car"].get_ylabel() == "qPCR (copies/\u00b5g)"
    assert p["blasts"].get_ylabel() == "% of marrow cells"
    assert p["tcells"].get_ylabel() == "blood (cells/\u00b5L)"
    assert p["cytokines"].get_ylabel() == "plasma (pg/mL)"
    for name in ("ld", "car", "blasts", "tcells", "cytokines"):
        assert p[name].get_yscale() == "log", name
    assert p["car"].get_xlim() == (-6.0, 100.0)
    cyto = [t.get_text() for t in p["cytokines"].get_legend().get_texts()]
    assert cyto == ["IL-6", "IFN-\u03b3", "IL-10", "TNF-\u03b1"]
    # response thresholds on the blasts panel
    levels = sorted(ln.get_ydata()[0] for ln in p["blasts"].get_lines()
                    if ln.get_linestyle() == ":")
    assert levels == [1e-3, 1e-2, 5.0]
    assert "patient 1" in p["text"].texts[0].get_text()
    assert "surrogate" in p["crs"].get_title()


def test_surrogate_crs_grade_band_follows_il6_thresholds(ds):
    thresholds = [35.0, 250.0, 1000.0, 4000.0]
    grade = cplot.surrogate_crs_grade([0.0, 35.0, 300.0, 5000.0, np.nan], thresholds)
    assert grade.tolist() == [0, 1, 2, 4, 0]
    fig = cplot.patient_story(ds, patient=2)  # IL-6 peak 5 + 400*2 = 805 pg/mL: grade 2
    labels = [t.get_text() for t in _panels(fig)["crs"].get_legend().get_texts()]
    assert labels == ["grade 1", "grade 2"]


def test_patient_story_with_endpoints_text(ds, ep):
    fig = cplot.patient_story(ds.isel(patient=[0]), endpoints=ep.isel(patient=[0]))
    text = _panels(fig)["text"].texts[0].get_text()
    assert "best response" in text and "surrogate CRS grade" in text


def test_patient_story_needs_the_observables(ds):
    with pytest.raises(ValueError, match="flu_conc"):
        cplot.patient_story(ds.drop_vars("flu_conc"))


def test_patient_story_baseline(ds, tmp_path):
    with deterministic_style():
        fig = Figure(figsize=(7, 8.5), layout="constrained")
        cplot.patient_story(ds, patient=0, fig=fig, xlim=(-6, 120))
        check_baseline(fig, "patient_story", tmp_path, tol=8.0)
