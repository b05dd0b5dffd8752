"""The Panel app object, driven without a browser: a refused value is shown on its control
and blocks Run; a run fills the value boxes and figures; the dose changes them."""

from __future__ import annotations

import os

import pytest

try:
    import panel  # noqa: F401
except ImportError as exc:  # the dev extra installs it
    if os.environ.get("CI"):
        raise
    pytest.skip(f"{exc.name} is not installed (pip install -e '.[dev]')",
                allow_module_level=True)

from cartsim.app import DosingApp


def test_import_cartsim_stays_light():
    import subprocess
    import sys

    code = "import cartsim, sys; print('panel' in sys.modules, 'bokeh' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]


def test_refusal_on_the_control_then_run_and_change():
    app = DosingApp(n_cohort=3, t_end=60)
    app.panel()
    assert app.errors == {} and not app.run_button.disabled
    app.set("B", "regimen.car_dose_per_kg", "-5")
    field = app.scenarios["B"]["regimen.car_dose_per_kg"]
    assert field.error.visible and "expected a number &gt;= 0.0" in field.error.object
    assert app.run_button.disabled and not app.run()
    app.set("B", "regimen.car_dose_per_kg", "5e5")
    assert not field.error.visible and not app.run_button.disabled
    assert app.run()
    first_boxes = app.boxes.object
    first_png = app.figure_panes["trajectories"]._data(app.figure_panes["trajectories"].object)
    assert 'cs-box cs-box-cmax" data-scenario="B"' in first_boxes
    app.set("B", "regimen.car_dose_per_kg", "5e6")
    app.set("B", "product", "allo_ko")
    assert app.run()
    assert app.boxes.object != first_boxes
    assert app.figure_panes["trajectories"]._data(
        app.figure_panes["trajectories"].object) != first_png
    assert app.result.scenarios["B"].product.name == "allo_ko"
    app.display.value = 20  # individual patients: redrawn without a new run
    assert app._figs["trajectories"][0].count("individual virtual patients")
    app.sensitivity()
    assert app.figure_panes["sensitivity"].visible
    assert b"<!DOCTYPE html>" in app._report_bytes().getvalue()


def test_scenario_count_and_conditional_controls():
    app = DosingApp(n_cohort=2, t_end=40)
    app.panel()
    assert [app._columns[n].visible for n in "ABCD"] == [True, True, False, False]
    app.n_scenarios.value = 4
    assert all(app._columns[n].visible for n in "ABCD") and app.active() == list("ABCD")
    f = app.scenarios["A"]
    assert not f["regimen.car_days"].view.visible
    app.set("A", "_schedule", "split")
    assert f["regimen.car_days"].view.visible
    app.set("A", "_toci", "rule")
    assert f["regimen.toci_il6_threshold"].view.visible and not f["regimen.toci_days"].view.visible
