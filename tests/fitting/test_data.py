"""Reading observed data: format, unit conversion and errors that name file, row, column."""

import math

import numpy as np
import pytest

from cartsim.fitting.data import DataError, read_observations

HEADER = "ID,TIME,DV,ANALYTE,UNIT,LLOQ,CENS,EVID,AMT,MDV,WT [kg]\n"


def write(tmp_path, body, header=HEADER, name="obs.csv"):
    p = tmp_path / name
    p.write_text(header + body)
    return p


GOOD = ("A,-5,,fludarabine,mg/m2,,0,1,25,1,60\n"
        "A,-5,,cy,mg/m2,,0,1,250,1,60\n"
        "A,-4,,fludarabine,mg/m2,,0,1,25,1,60\n"
        "A,-4,,cy,mg/m2,,0,1,250,1,60\n"
        "A,0,,car_t,10^8 cells,,0,1,1.2,1,60\n"
        "A,7,12,qpcr,copies/ng,0.05,0,0,,0,60\n"
        "A,14,,car_copies_per_ug,copies/ug,50,1,0,,0,60\n"
        "A,14,250,il6,ng/L,,0,0,,0,60\n"
        "A,21,1.5,il6,ng/mL,,0,0,,0,60\n"
        "A,21,0.2,car_pct_of_t,fraction,,0,0,,0,60\n"
        "A,28,99,il6,pg/mL,,0,0,,1,60\n")


def test_reads_and_converts_units(tmp_path):
    obs = read_observations(write(tmp_path, GOOD))
    assert obs.ids == ["A"]
    assert obs.analyte.tolist() == ["car_copies_per_ug", "car_copies_per_ug", "il6", "il6",
                                    "car_pct_of_t"]
    # copies/ng -> copies/ug (x1000), ng/L = pg/mL, ng/mL -> pg/mL (x1000), fraction -> %
    np.testing.assert_allclose(obs.dv, [12000.0, 50.0, 250.0, 1500.0, 20.0])
    np.testing.assert_allclose(obs.lloq[:2], [50.0, 50.0])
    assert obs.cens.tolist() == [False, True, False, False, False]
    reg = obs.regimens[0]
    assert reg["car_dose_per_kg"] == pytest.approx(1.2e8 / 60)  # total cells / weight
    assert reg["ld_days"] == [-5.0, -4.0] and reg["flu_mg_m2"] == 25 and reg["cy_mg_m2"] == 250
    sc = obs.scenarios()[0]
    assert sc.patient.weight_kg == 60 and sc.regimen.cy_mg_m2 == 250


def test_time_in_hours_is_converted_to_days(tmp_path):
    p = write(tmp_path, "A,48,100,qpcr,copies/ug,,0,0,,0,70\n",
              header=HEADER.replace("TIME", "TIME [h]"))
    assert read_observations(p).time[0] == pytest.approx(2.0)


def test_dvid_codes(tmp_path):
    p = write(tmp_path, "A,1,10,1,copies/ug\nA,1,5,5,pg/mL\n", header="ID,TIME,DV,DVID,UNIT\n")
    assert read_observations(p).analyte.tolist() == ["car_copies_per_ug", "il6"]


@pytest.mark.parametrize("body,header,words", [
    ("A,7,12,qpcr,copies/L,,0,0,,0,70\n", HEADER, ["data row 1", "UNIT", "copies/L",
                                                   "copies/ug"]),
    ("A,7,12,ferritin,ng/mL,,0,0,,0,70\n", HEADER, ["data row 1", "ANALYTE", "ferritin",
                                                    "car_copies_per_ug"]),
    ("A,7,nan,qpcr,copies/ug,,0,0,,0,70\n", HEADER, ["data row 1", "DV", "finite"]),
    ("A,7,,qpcr,copies/ug,,0,0,,0,70\n", HEADER, ["data row 1", "DV", "empty"]),
    ("A,7,0,qpcr,copies/ug,,0,0,,0,70\n", HEADER, ["DV", "CENS=1"]),
    ("A,0,,car_t,cells/kg,,0,1,-5,1,70\n", HEADER, ["data row 1", "AMT", ">= 0"]),
    ("A,7,12,qpcr,copies/ug\n", "ID,TIME,DV,ANALYTE\n", ["missing required column UNIT"]),
    ("A,7,12,qpcr,copies/ug,1\n", "ID,TIME,DV,ANALYTE,UNIT,AGE\n", ["unknown column 'AGE'"]),
    ("A,7,12,qpcr,copies/ug,70\n", "ID,TIME,DV,ANALYTE,UNIT,WT\n", ["WT", "has no unit"]),
    ("A,7,12,qpcr,copies/ug,,0,0,,0,70\nA,8,12,qpcr,copies/ug,,0,0,,0,71\n", HEADER,
     ["data row 2", "WT [kg]", "one value per patient"]),
    ("A,7,12,qpcr,copies/ug,,0,0,,0,70\n", HEADER.replace("TIME", "TIME [fortnight]"),
     ["TIME", "fortnight", "day"]),
    ("A,7,12,qpcr,copies/ug,,-1,0,,0,70\n", HEADER, ["CENS", "right-censoring"]),
    ("A,2,,car_t,cells/kg,,0,1,1e6,1,70\nA,7,12,qpcr,copies/ug,,0,0,,0,70\n", HEADER,
     ["first CAR-T dose", "TIME 0"]),
])
def test_errors_name_file_row_and_column(tmp_path, body, header, words):
    p = write(tmp_path, body, header)
    with pytest.raises(DataError) as err:
        read_observations(p)
    msg = str(err.value)
    assert str(p) in msg
    for w in words:
        assert w in msg, msg


def test_censored_row_without_lloq_takes_dv_as_limit(tmp_path):
    obs = read_observations(write(tmp_path, "A,7,50,qpcr,copies/ug,,1,0,,0,70\n"))
    assert obs.cens[0] and obs.dv[0] == 50 and obs.lloq[0] == 50


def test_select_and_unknown_patient(tmp_path):
    obs = read_observations(write(tmp_path, "A,7,5,qpcr,copies/ug,,0,0,,0,70\n"
                                            "B,7,6,qpcr,copies/ug,,0,0,,0,80\n"))
    b = obs.select("B")
    assert b.ids == ["B"] and b.dv.tolist() == [6.0] and b.patient.tolist() == [0]
    assert math.isclose(b.covariates["weight_kg"][0], 80)
    with pytest.raises(DataError, match="no patient with ID 'C'"):
        obs.select("C")


def test_shipped_example_data_read():
    from pathlib import Path

    root = Path(__file__).parents[2] / "experiments" / "data"
    obs = read_observations(root / "synthetic_cohort.csv")
    assert obs.n_patients == 20 and obs.cens.any() and set(obs.analytes) == {
        "car_copies_per_ug", "car_cells_per_ul"}
    stein = read_observations(root / "stein2019_typical.csv")
    assert stein.n_patients == 1 and not stein.cens.any()


def test_blq_flag_contradicting_the_value_names_the_blq_column(tmp_path):
    header = "ID,TIME,DV,ANALYTE,UNIT,LLOQ,BLQ\n"
    with pytest.raises(DataError) as err:
        read_observations(write(tmp_path, "A,7,80,qpcr,copies/ug,50,1\n", header=header))
    assert "column BLQ: BLQ=1" in str(err.value) and "DV 80.0 above the row's LLOQ 50.0" in str(
        err.value)
    # a censored row's DV at or below its LLOQ (or empty) is the M3 convention: accepted
    obs = read_observations(write(tmp_path, "A,7,50,qpcr,copies/ug,50,1\n"
                                            "A,8,12,qpcr,copies/ug,50,1\n", header=header))
    assert obs.cens.tolist() == [True, True] and obs.dv.tolist() == [50.0, 50.0]


def test_dose_from_base_travels_with_a_selection(tmp_path):
    p = write(tmp_path, "A,7,5,qpcr,copies/ug,,0,0,,0,70\nB,7,6,qpcr,copies/ug,,0,0,,0,80\n")
    obs = read_observations(p, dose_from_base=True)
    assert obs.select("B").dose_from_base
    assert obs.select("B").scenarios()[0].regimen.car_dose_per_kg == 1e6  # the base's dose
    with pytest.raises(DataError, match="patient ID 'B' has no CAR-T dose record"):
        read_observations(p).select("B").scenarios()


def test_good_file_passes_the_new_semantic_checks(tmp_path):
    """The reference file: doses first, observations after them, no copy, CENS consistent."""
    obs = read_observations(write(tmp_path, GOOD))
    assert len(obs.scenarios()) == 1 and obs.time.min() >= -5.0
