"""The dosing what-if app without a browser: controls -> scenarios, refusals in the library's
words, comparisons that differ when the regimen differs, observed data, downloads."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import xarray as xr

import cartsim
from cartsim.app import controls as C
from cartsim.app import results as R
from cartsim.plot.whatif import what_if_overrides

EXAMPLE = "experiments/data/synthetic_cohort.csv"


def test_controls_build_the_scenario_the_command_line_builds():
    inputs = C.read_inputs(
        {"disease": "tlbl", "patient.weight_kg": "55", "patient.marrow_blast_pct": "80",
         "patient.cd7neg_blast_fraction": "1e-4", "disease.em_volume_cm3": "20",
         "patient.crcl_ml_min": "50"},
        {"B": {"product": "ko", "regimen.car_dose_per_kg": "5e5", "_schedule": "split",
               "regimen.car_days": "0, 3", "regimen.car_fractions": "0.3, 0.7",
               "_toci": "rule", "regimen.toci_il6_threshold": "250",
               "_steroid": "days", "regimen.steroid_days": "2, 4",
               "regimen.flu_mg_m2": "25", "regimen.ld_days": "-4, -3",
               "regimen.hsct_day": "60", "regimen.hsct_criterion": "cr",
               "regimen.reinfusion_days": "30", "regimen.reinfusion_dose_per_kg": "2e5"}})
    assert not inputs.errors
    reg = inputs.regimens["B"]
    assert reg["product"] == "ko" and reg["car_days"] == [0.0, 3.0]
    assert reg["toci_il6_threshold"] == 250.0 and reg["toci_days"] == []
    assert reg["steroid_il6_threshold"] is None and reg["steroid_days"] == [2.0, 4.0]
    fast = C.build_scenario(inputs.patient, reg, t_end=200.0)
    slow = cartsim.load_config(what_if_overrides(inputs.patient, reg, t_end=200.0))
    assert fast == slow
    assert fast.disease.name == "tlbl" and fast.disease.em_volume_cm3 == 20.0
    assert fast.regimen.reinfusion_dose_per_kg == 2e5 and fast.regimen.hsct_criterion == "cr"


def test_single_schedule_and_unused_intervention_fields_are_ignored():
    inputs = C.read_inputs({}, {"A": {"_schedule": "single", "regimen.car_days": "junk",
                                      "_toci": "none", "regimen.toci_days": "1"}})
    # a bad text in a control that does not apply is still shown, but not used
    assert "A:regimen.car_days" in inputs.errors
    assert "car_days" not in inputs.regimens["A"] and inputs.regimens["A"]["toci_days"] == []


@pytest.mark.parametrize("scope,key,text,expected", [
    ("B", "regimen.car_dose_per_kg", "-1",
     "regimen.car_dose_per_kg=-1.0 is not accepted: expected a number >= 0.0"),
    ("B", "regimen.car_dose_per_kg", "lots",
     "regimen.car_dose_per_kg='lots' is not accepted: expected a finite number"),
    ("patient", "patient.marrow_blast_pct", "120",
     "patient.marrow_blast_pct=120.0 is not accepted: expected a number < 100.0"),
    ("patient", "patient.weight_kg", "nan",
     "patient.weight_kg='nan' is not accepted: expected a finite number"),
])
def test_bad_input_gets_the_library_message_on_its_control(scope, key, text, expected):
    patient = {key: text} if scope == "patient" else {}
    scen = {"A": {}, "B": {key: text} if scope == "B" else {}}
    errors = C.check_inputs(C.read_inputs(patient, scen))
    assert errors == {f"{scope}:{key}": expected}
    assert "\n" not in expected


def test_split_fractions_are_refused_as_the_library_refuses_them():
    scen = {"A": {"_schedule": "split", "regimen.car_days": "0, 3",
                  "regimen.car_fractions": "0.5, 0.6"}}
    errors = C.check_inputs(C.read_inputs({}, scen))
    with pytest.raises(cartsim.ScenarioError) as lib:
        cartsim.Regimen(car_days=[0.0, 3.0], car_fractions=[0.5, 0.6])
    assert errors == {"A:regimen.car_fractions": str(lib.value)}


def test_every_product_and_disease_preset_is_offered():
    assert set(C.PRODUCTS) == {p.stem for p in cartsim.config.conf_dir().glob("product/*.yaml")}
    assert set(C.DISEASES) == {p.stem for p in cartsim.config.conf_dir().glob("disease/*.yaml")}
    assert all(C.product_labels()[p] for p in C.PRODUCTS)


@pytest.fixture(scope="module")
def comparison():
    inputs = C.read_inputs({"patient.marrow_blast_pct": "60"},
                           {"A": {}, "B": {"product": "ko", "regimen.car_dose_per_kg": "2e5"},
                            "A again": {}})
    return R.run_comparison(inputs, n_cohort=4, t_end=120.0, seed=3)


def test_comparison_differs_when_the_regimen_differs(comparison):
    assert list(comparison.cohorts) == ["A", "B", "A again"]
    assert comparison.scenarios["B"].product.name == "ko"
    box = {n: {b.key: b for b in R.value_boxes(comparison, n)} for n in comparison.cohorts}
    assert box["A"]["cmax"].value != box["B"]["cmax"].value
    # the same regimen on the same virtual patients gives the same numbers
    assert box["A"]["cmax"].value == box["A again"]["cmax"].value
    ep = comparison.endpoints()
    assert (ep["A"]["eta_rho_max"].values == ep["B"]["eta_rho_max"].values).all()
    assert ep["B"]["car_dose_per_kg"].values[0] == 2e5
    assert box["A"]["crs3"].title.endswith("(model surrogate)")
    assert "95% CI" in box["A"]["cr"].detail and "90% of patients" in box["A"]["cmax"].detail
    sentence = R.summary_sentence("A", R.value_boxes(comparison, "A"))
    assert sentence.startswith("A: CAR-T cells peak around day")


def test_rate_boxes_match_counts(comparison):
    ep = comparison.cohorts["A"].endpoints
    box = {b.key: b for b in R.value_boxes(comparison, "A")}
    crs3 = float((ep["crs_grade"].values >= 3).mean())
    assert box["crs3"].value == pytest.approx(crs3)
    assert box["pfs12"].text == "not estimable"  # follow-up of 120 days


def test_figures_report_and_data_files(comparison, tmp_path):
    obs = R.read_observed(open(EXAMPLE, "rb").read(), "synthetic_cohort.csv")
    figs = R.figures(comparison, observed=obs, t_end=120.0)
    assert set(figs) == {"trajectories", "drugs", "probabilities"}
    traj = figs["trajectories"][1]
    assert len(traj.axes) == 5 * 3
    labels = [ax.get_ylabel() for ax in traj.axes[::3]]
    assert "(copies/\u00b5g)" in labels[0] and "(cells/\u00b5L)" in labels[1]
    assert "(%)" in labels[2] and "(pg/mL)" in labels[4]
    # the observed qPCR values are drawn on the qPCR row, BLQ rows as censored triangles
    first = traj.axes[0]
    drawn = [ln for ln in first.lines if ln.get_label() == "observed"]
    assert drawn and len(drawn[0].get_xdata()) == int(
        ((obs["analyte"] == "car_copies_per_ug") & ~obs["blq"]).sum())
    assert any(ln.get_label() == "observed, below LLOQ" for ln in first.lines)
    # drug panel resolves the infusion peaks: several samples per LD day
    drug_ax = figs["drugs"][1].axes[0]
    t = drug_ax.lines[0].get_xdata()
    assert np.sum((t >= -5) & (t < -4)) >= 15
    path = R.write_report(comparison, figs, tmp_path / "report.html")
    page = path.read_text()
    assert page.count('<img src="data:image/png;base64,') == 3
    assert "<script" not in page and "Severe CRS" in page and "B" in page
    csv = R.value_table_csv(comparison)
    assert csv.splitlines()[0] == "scenario,key,title,value,text,detail"
    assert len(csv.splitlines()) == 1 + 3 * (len(R.KINETIC_BOXES) + len(R.RATE_BOXES))
    ds = xr.open_dataset(io.BytesIO(R.netcdf_bytes(comparison)), engine="h5netcdf")
    assert list(ds["scenario"].values) == ["A", "B", "A again"]
    assert ds.sizes["patient"] == 4 and "typical_flu_conc" in ds


def test_observed_file_blq_and_refusal():
    obs = R.read_observed(open(EXAMPLE, "rb").read(), "synthetic_cohort.csv")
    blq = obs["blq"].values
    assert blq.any() and np.isnan(obs["value"].values[blq]).all()
    assert (obs["lloq"].values[blq] == 50.0).all()
    with pytest.raises(cartsim.ScenarioError) as exc:
        R.read_observed(b"ID,TIME\n1,2\n", "mine.csv")
    msg = str(exc.value)
    assert msg.startswith("mine.csv: missing required column") and "\n" not in msg


def test_sensitivity_moves_the_peak_the_right_way(comparison):
    rows = R.sensitivity(comparison.scenarios["A"], "cmax_qpcr",
                         parameters=("rho_max", "delta_e"))
    by = {r["parameter"]: r for r in rows}
    # faster expansion gives a higher peak, faster effector death a lower one
    assert by["rho_max"]["low"] < by["rho_max"]["base"] < by["rho_max"]["high"]
    assert by["delta_e"]["high"] < by["delta_e"]["base"]
    p = cartsim.get_model("cd7").parameters["rho_max"].value
    assert by["rho_max"]["low_value"] == pytest.approx(0.5 * p)
    assert math.isfinite(by["rho_max"]["base"])
