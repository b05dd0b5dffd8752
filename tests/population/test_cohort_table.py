"""Reading cohorts from CSV/Parquet tables: unit conversion and every kind of bad table."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from cartsim.population import CohortTableError, PopulationSpec, draw_cohort, read_cohort
from cartsim.scenario import Disease, Regimen, Scenario, ScenarioError

DATA = Path(__file__).parent / "data"
BASE = Scenario(disease=Disease(em_volume_cm3=7.0), regimen=Regimen(car_dose_per_kg=3e5))
LB, INCH = 0.45359237, 2.54  # kg per lb, cm per inch (exact by definition)


def _write(tmp_path: Path, text: str, name: str = "cohort.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_unusual_units_convert_exactly():
    c = read_cohort(DATA / "cohort_units.csv", BASE)
    t = c.table
    assert len(c) == 3  # the blank line is layout, not a patient
    assert list(t.patient_id.values) == ["P01", "P02", "P03"]
    expected = {
        "weight_kg": [154 * LB, 99.2 * LB, 220 * LB],
        "height_cm": [67 * INCH, 61.5 * INCH, 74 * INCH],
        "marrow_blast_pct": [35.0, 2.0, 90.0],
        "crcl_ml_min": [100.0, 70.0, 165.0],           # L/h * 1000 mL/L / 60 min/h
        "cd7neg_blast_fraction": [0.005, 1e-5, 0.0],
        "cd7_density": [1.2, 0.8, 1.0],
        "lymphocytes_per_ul": [800.0, 350.0, 1600.0],  # 1e9/L = 1e9 / 1e6 uL
        "anc_per_ul": [2500.0, 1100.0, 4750.0],
        "em_volume_cm3": [0.0, 35.5, 120.0],
        "car_dose_per_kg": [1e6, 5e5, 2e6],
    }
    for name, want in expected.items():
        np.testing.assert_allclose(t[name].values, want, rtol=1e-14, err_msg=name)
    assert list(t.em_present.values) == [False, True, True]
    s = c.scenarios[1]
    assert s.patient.weight_kg == pytest.approx(99.2 * LB, rel=1e-15)
    assert (s.disease.em_volume_cm3, s.regimen.car_dose_per_kg) == (35.5, 5e5)
    assert (s.product, s.model) == (BASE.product, BASE.model)
    assert t.weight_kg.attrs["units"] == "kg" and "weight [lb]" in t.weight_kg.attrs["origin"]
    assert t.attrs["source"].endswith("cohort_units.csv")


def test_required_columns_only_keep_the_base_values(tmp_path):
    path = _write(tmp_path, "Patient_ID, Weight [KG] ,height [m],marrow_blasts [%]\n"
                            "7,70,1.8,12.5\n8,55,1.62,0\n")
    c = read_cohort(path, BASE)
    t = c.table
    assert list(t.patient_id.values) == ["7", "8"]
    np.testing.assert_allclose(t.height_cm, [180.0, 162.0], rtol=1e-14)
    assert (t.em_volume_cm3 == 7.0).all() and (t.car_dose_per_kg == 3e5).all()
    assert (t.crcl_ml_min == BASE.patient.crcl_ml_min).all()
    assert c.scenarios[0].patient.crcl_ml_min == BASE.patient.crcl_ml_min


@pytest.mark.parametrize(("unit", "value", "per_ul"), [
    ("cells/µL", "900", 900.0), ("/uL", "900", 900.0), ("x10^9/L", "0.9", 900.0),
    ("10^3/uL", "0.9", 900.0), ("cells/mm3", "900", 900.0), ("G/L", "0.9", 900.0),
])
def test_count_unit_spellings(tmp_path, unit, value, per_ul):
    path = _write(tmp_path, f"patient_id,weight [kg],height [cm],marrow_blasts [%],"
                            f"lymphocytes [{unit}]\nA,70,170,10,{value}\n")
    assert read_cohort(path, BASE).table.lymphocytes_per_ul.values[0] == pytest.approx(per_ul)


def test_tables_read_and_drawn_have_the_same_covariates():
    read = read_cohort(DATA / "cohort_units.csv", BASE).table
    drawn = draw_cohort(BASE, PopulationSpec(n=3, random_effects={},
                                             poor_expander_probability=None,
                                             em_refractory_probability=None), 0).table
    assert set(read.data_vars) == set(drawn.data_vars)


HEAD = "patient_id,weight [lb],height [cm],marrow_blasts [%]"


@pytest.mark.parametrize(("text", "needles"), [
    ("", ["empty table"]),
    (HEAD + "\n", ["header but no data rows"]),
    ("patient_id,weight [kg],marrow_blasts [%]\nA,70,10\n",
     ["missing required column height", "'weight [kg]'"]),
    (HEAD + ",age [y]\nA,150,170,10,30\n", ["unknown column 'age [y]'", "crcl [mL/min|L/h]"]),
    ("patient_id,weight,height [cm],marrow_blasts [%]\nA,150,170,10\n",
     ["column 'weight' has no unit", "kg, g, lb"]),
    ("patient_id,weight [stone],height [cm],marrow_blasts [%]\nA,11,170,10\n",
     ["column 'weight [stone]' has an unknown unit 'stone'", "kg, g, lb"]),
    ("patient_id [-],weight [kg],height [cm],marrow_blasts [%]\nA,70,170,10\n",
     ["'patient_id [-]'", "takes no unit"]),
    (HEAD + ",weight [kg]\nA,150,170,10,70\n", ["column 'weight' appears 2 times"]),
    (HEAD + "\nA,150,170,10\nB,150,170\n", ["data row 2 (line 3) has 3 cells", "expected 4"]),
    (HEAD + "\nA,150,170,10\nB,,170,10\n",
     ["data row 2 (line 3) (patient_id 'B'), column 'weight [lb]'", "''", "a number in lb"]),
    (HEAD + "\nA,150,170,10\nB,heavy,170,10\n", ["data row 2", "'heavy'", "a number"]),
    (HEAD + "\nA,150,170,nan\n", ["column 'marrow_blasts [%]'", "'nan'", "a finite number"]),
    (HEAD + "\nA,150,170,10\nB,800,170,10\n",
     ["data row 2 (line 3) (patient_id 'B'), column 'weight [lb]'", "'800' lb = 362.874 kg",
      "patient.weight_kg=", "<= 300.0"]),
    ("patient_id,weight [kg],height [cm],marrow_blasts [fraction]\nA,70,170,1.2\n",
     ["column 'marrow_blasts [fraction]'", "'1.2' fraction = 120 %", "< 100"]),
    (HEAD + ",em_volume [cm3]\nA,150,170,10,-3\n",
     ["column 'em_volume [cm3]'", "disease.em_volume_cm3=-3.0", ">= 0"]),
    (HEAD + "\nA,150,170,10\nB,150,170,10\nA,150,170,10\n",
     ["patient_id 'A' appears in data rows 1 and 3"]),
    (HEAD + "\n ,150,170,10\n", ["data row 1 (line 2)", "column 'patient_id': empty"]),
])
def test_bad_tables_name_row_patient_and_column(tmp_path, text, needles):
    with pytest.raises(CohortTableError) as err:
        read_cohort(_write(tmp_path, text), BASE)
    assert isinstance(err.value, ScenarioError) and isinstance(err.value, ValueError)
    assert "cohort.csv" in str(err.value)
    for needle in needles:
        assert needle in str(err.value)


def test_unknown_format_and_tsv(tmp_path):
    with pytest.raises(CohortTableError, match=r"unknown table format '\.xlsx'.*\.csv"):
        read_cohort(_write(tmp_path, "x", "cohort.xlsx"), BASE)
    tsv = _write(tmp_path, HEAD.replace(",", "\t") + "\nA\t150\t170\t10\n", "cohort.tsv")
    assert read_cohort(tsv, BASE).table.weight_kg.values[0] == pytest.approx(150 * LB)


def test_parquet_round_trip(tmp_path):
    pytest.importorskip("pyarrow")
    import pandas as pd

    df = pd.DataFrame({"patient_id": [101, 102], "weight [g]": [70_000.0, 52_500.0],
                       "height [cm]": [170.0, 158.0], "marrow_blasts [%]": [40.0, 3.0],
                       "em_volume [cm3]": [0.0, 12.0]})
    path = tmp_path / "cohort.parquet"
    df.to_parquet(path)
    c = read_cohort(path, BASE)
    assert list(c.table.patient_id.values) == ["101", "102"]
    np.testing.assert_allclose(c.table.weight_kg, [70.0, 52.5], rtol=1e-15)
    assert list(c.table.em_present.values) == [False, True]
    df.loc[1, "height [cm]"] = float("nan")
    df.to_parquet(path)
    with pytest.raises(CohortTableError, match=r"data row 2 \(patient_id '102'\), column "
                                               r"'height \[cm\]'.*a finite number"):
        read_cohort(path, BASE)


def test_parquet_without_pyarrow_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    with pytest.raises(ImportError, match=r"pip install pyarrow.*cartsim\[parquet\]"):
        read_cohort(_write(tmp_path, "", "cohort.parquet"), BASE)


def test_a_tsv_holding_commas_asks_for_tabs(tmp_path):
    path = _write(tmp_path, HEAD + "\nA,150,170,10\n", "cohort.tsv")
    with pytest.raises(CohortTableError) as err:
        read_cohort(path, BASE)
    assert "holding commas: expected a tab-delimited UTF-8 table" in str(err.value)
