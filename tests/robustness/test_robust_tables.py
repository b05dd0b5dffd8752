"""A corpus of bad cohort tables and observation files, and seeded random damage to good
ones: every file either reads (and what was read stays inside the documented ranges) or is
refused with one line naming the file and, where there is one, the row and the column."""

from __future__ import annotations

import math

import numpy as np
import pytest
from robust_helpers import assert_clean_error, write

from cartsim.fitting.data import DataError, read_observations
from cartsim.population import CohortTableError, read_cohort
from cartsim.scenario import ModelConfig, Scenario, ScenarioError

BASE = Scenario()
HEAD = "patient_id,weight [kg],height [cm],marrow_blasts [%]"
GOOD_TABLE = f"{HEAD}\nA,70,170,40\nB,55.5,160,3\n"

# (file content, needles); every message also names the file
BAD_TABLES = {
    "missing column": ("patient_id,weight [kg],marrow_blasts [%]\nA,70,40\n",
                       ["missing required column height"]),
    "unknown unit": ("patient_id,weight [st],height [cm],marrow_blasts [%]\nA,11,170,40\n",
                     ["'weight [st]'", "unknown unit 'st'", "kg, g, lb"]),
    "unit missing": ("patient_id,weight,height [cm],marrow_blasts [%]\nA,70,170,40\n",
                     ["'weight'", "has no unit"]),
    "unknown column": (f"{HEAD},age [y]\nA,70,170,40,30\n", ["unknown column 'age [y]'"]),
    "text in numbers": (f"{HEAD}\nA,70,tall,40\n",
                        ["data row 1", "column 'height [cm]'", "'tall'", "a number in cm"]),
    "decimal comma": (f"{HEAD}\nA,\"70,5\",170,40\n",
                      ["data row 1", "column 'weight [kg]'", "'70,5'", "a number"]),
    "empty file": ("", ["empty table"]),
    "blank lines only": ("\n\n  \n", ["empty table"]),
    "header only": (f"{HEAD}\n", ["header but no data rows"]),
    "duplicated IDs": (f"{HEAD}\nA,70,170,40\nA,60,160,30\n",
                       ["patient_id 'A' appears in data rows 1 and 2"]),
    "empty ID": (f"{HEAD}\n,70,170,40\n", ["data row 1", "column 'patient_id': empty"]),
    "semicolons": (HEAD.replace(",", ";") + "\nA;70;170;40\n",
                   ["line 1", "semicolons", "expected a comma-delimited UTF-8 CSV"]),
    "tabs in a .csv": (HEAD.replace(",", "\t") + "\nA\t70\t170\t40\n",
                       ["tabs", "expected a comma-delimited UTF-8 CSV"]),
    "latin-1 bytes": ((HEAD + "\nJos\xe9,70,170,40\n").encode("latin-1"),
                      ["line 2", "b'\\xe9'", "not UTF-8", "expected a comma-delimited UTF-8 CSV"]),
    "UTF-16": (GOOD_TABLE.encode("utf-16"), ["line 1", "not UTF-8"]),
    "binary junk": (bytes(range(256)), ["not UTF-8"]),
    "NaN": (f"{HEAD}\nA,70,170,nan\n", ["column 'marrow_blasts [%]'", "'nan'", "finite"]),
    "inf": (f"{HEAD}\nA,inf,170,40\n", ["column 'weight [kg]'", "'inf'", "finite"]),
    "-Infinity": (f"{HEAD}\nA,70,-Infinity,40\n", ["column 'height [cm]'", "finite"]),
    "out of range": (f"{HEAD}\nA,70,170,100\n", ["column 'marrow_blasts [%]'",
                                                 "patient.marrow_blast_pct=100.0", "< 100"]),
    "ragged row": (f"{HEAD}\nA,70,170\n", ["data row 1 (line 2) has 3 cells", "expected 4"]),
    "dose below one cell": (f"{HEAD},car_dose [cells/kg]\nA,70,170,40,1e-3\n",
                            ["data row 1", "regimen.car_dose_per_kg=0.001", "one CAR+ cell"]),
}


@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_bad_cohort_table_is_one_line_naming_file_row_column(tmp_path, case):
    text, needles = BAD_TABLES[case]
    path = write(tmp_path / "cohort.csv", text)
    with pytest.raises(CohortTableError) as info:
        read_cohort(path, BASE)
    assert isinstance(info.value, ScenarioError)  # the CLI prints it and exits with 2
    assert_clean_error(info.value, str(path), *needles)


def test_missing_directory_and_corrupt_parquet_tables(tmp_path):
    with pytest.raises(CohortTableError) as info:
        read_cohort(tmp_path / "nowhere.csv", BASE)
    assert_clean_error(info.value, "nowhere.csv", "no such file")
    with pytest.raises(CohortTableError) as info:
        read_cohort(tmp_path, BASE)  # a directory
    assert_clean_error(info.value, str(tmp_path))
    pytest.importorskip("pyarrow")
    path = write(tmp_path / "cohort.parquet", b"PAR1 this is not parquet PAR1")
    with pytest.raises(CohortTableError) as info:
        read_cohort(path, BASE)
    assert_clean_error(info.value, "cohort.parquet", "not a readable Parquet file")


def test_a_utf8_bom_is_dropped(tmp_path):
    path = write(tmp_path / "cohort.csv", b"\xef\xbb\xbf" + GOOD_TABLE.encode())
    table = read_cohort(path, BASE).table
    assert table.patient_id.values.tolist() == ["A", "B"]
    np.testing.assert_array_equal(table.weight_kg.values, [70.0, 55.5])


# --- observation files --------------------------------------------------------------------

OBS_HEAD = "ID,TIME,DV,ANALYTE,UNIT,LLOQ,CENS,EVID,AMT,MDV\n"
DOSE = "A,0,,car_t,cells/kg,,0,1,1e6,1\n"
OBS = "A,7,120,qpcr,copies/ug,50,0,0,,0\n"

BAD_OBSERVATIONS = {
    "duplicated observation": (DOSE + OBS + OBS, ["data row 3", "repeats data row 2"]),
    "duplicated dose": (DOSE + DOSE + OBS, ["data row 2", "repeats data row 1"]),
    "CENS=1 above LLOQ": (DOSE + "A,7,120,qpcr,copies/ug,50,1,0,,0\n",
                          ["data row 2", "column CENS", "DV 120.0", "LLOQ 50.0"]),
    "CENS=0 below LLOQ": (DOSE + "A,7,20,qpcr,copies/ug,50,0,0,,0\n",
                          ["data row 2", "column DV", "below the row's LLOQ", "CENS=1"]),
    "patient without observations": (DOSE + OBS + "B,0,,car_t,cells/kg,,0,1,1e6,1\n",
                                      ["patient ID 'B'", "no observation rows"]),
    "only doses": (DOSE, ["no observation rows"]),
    "NaN DV": (DOSE + "A,7,nan,qpcr,copies/ug,50,0,0,,0\n", ["data row 2", "DV", "finite"]),
    "inf TIME": (DOSE + "A,inf,120,qpcr,copies/ug,50,0,0,,0\n", ["data row 2", "TIME",
                                                                  "finite"]),
    "text in TIME": (DOSE + "A,day7,120,qpcr,copies/ug,50,0,0,,0\n", ["data row 2", "TIME",
                                                                       "'day7'"]),
    "semicolons": (None, ["semicolons", "expected a comma-delimited UTF-8 CSV"]),
    "latin-1 bytes": (None, ["line 3", "not UTF-8"]),
    "empty file": ("", ["empty file"]),
}


@pytest.mark.parametrize("case", list(BAD_OBSERVATIONS))
def test_bad_observation_file_is_one_line_naming_file_row_column(tmp_path, case):
    body, needles = BAD_OBSERVATIONS[case]
    if case == "semicolons":
        text = (OBS_HEAD + DOSE + OBS).replace(",", ";")
    elif case == "latin-1 bytes":
        text = (OBS_HEAD + DOSE + OBS.replace("copies/ug", "copies/\xb5g")).encode("latin-1")
    else:
        text = "" if body == "" else OBS_HEAD + body
    path = write(tmp_path / "obs.csv", text)
    with pytest.raises(DataError) as info:
        read_observations(path)
    assert isinstance(info.value, ScenarioError)
    assert_clean_error(info.value, str(path), *needles)


@pytest.mark.parametrize(("body", "model", "needles"), [
    (OBS, "cd7", ["patient ID 'A'", "no CAR-T dose record", "EVID=1", "dose_from_base=True"]),
    (DOSE + "A,-10,5,il6,pg/mL,,0,0,,0\n" + OBS, "cd7",
     ["data row 2", "column TIME", "day -10", "first dose (day -5, lymphodepletion)"]),
    ("A,-10,5,car_copies_per_ug,copies/ug,,0,0,,0\n" + DOSE + OBS, "stein2019",
     ["data row 1", "column TIME", "day -10"]),
], ids=["no-dose-record", "before-first-dose", "before-first-dose-stein"])
def test_observation_semantics_are_errors_naming_the_row(tmp_path, body, model, needles):
    path = write(tmp_path / "obs.csv", OBS_HEAD + body)
    obs = read_observations(path)
    with pytest.raises(DataError) as info:
        obs.scenarios(Scenario(model=ModelConfig(name=model)))
    assert_clean_error(info.value, str(path), *needles)


def test_missing_dose_record_is_allowed_when_asked_or_dose_free(tmp_path):
    path = write(tmp_path / "obs.csv", OBS_HEAD + OBS)
    base = Scenario()
    sc = read_observations(path, dose_from_base=True).scenarios(base)[0]
    assert sc.regimen == base.regimen
    stein = Scenario(model=ModelConfig(name="stein2019"))
    assert read_observations(path).scenarios(stein)[0].regimen == stein.regimen


# --- seeded random damage to good files ---------------------------------------------------

def _damage(rng: np.random.Generator, text: str) -> str | bytes:
    """One random, realistic mistake in a CSV file."""
    lines = text.splitlines(keepends=True)
    kind = rng.integers(9)
    r = int(rng.integers(len(lines)))
    if kind == 0:  # a cell replaced by junk
        cells = lines[r].rstrip("\n").split(",")
        cells[int(rng.integers(len(cells)))] = str(rng.choice(
            ["", "abc", "nan", "inf", "-1", "1e400", "0", "1e-30", "\"", " ", "1,5", "NA", "."]))
        lines[r] = ",".join(cells) + "\n"
    elif kind == 1:  # a line dropped
        del lines[r]
    elif kind == 2:  # a line repeated
        lines.insert(r, lines[r])
    elif kind == 3:  # a cell dropped
        cells = lines[r].rstrip("\n").split(",")
        del cells[int(rng.integers(len(cells)))]
        lines[r] = ",".join(cells) + "\n"
    elif kind == 4:  # another delimiter
        return "".join(lines).replace(",", str(rng.choice([";", "\t", "|"])))
    elif kind == 5:  # a non-UTF-8 byte
        raw = bytearray("".join(lines).encode())
        raw.insert(int(rng.integers(len(raw) + 1)), int(rng.integers(0x80, 0x100)))
        return bytes(raw)
    elif kind == 6:  # truncated
        return "".join(lines)[: int(rng.integers(len(text)))]
    elif kind == 7:  # a BOM
        return "\ufeff" + "".join(lines)
    else:  # two columns swapped in the header only
        cells = lines[0].rstrip("\n").split(",")
        i, j = rng.choice(len(cells), 2, replace=False)
        cells[i], cells[j] = cells[j], cells[i]
        lines[0] = ",".join(cells) + "\n"
    return "".join(lines)


COHORT = (f"{HEAD},crcl [mL/min],anc [10^9/L],car_dose [10^6 cells/kg]\n"
          "P1,70,170,40,96,2.5,1\nP2,48,155,80,60,0.4,0.5\nP3,95,188,0.5,120,6,3\n")
OBSERVATIONS = (OBS_HEAD.rstrip("\n") + ",WT [kg]\n"
                "A,-5,,flu,mg/m2,,0,1,30,1,70\nA,0,,car_t,cells/kg,,0,1,1e6,1,70\n"
                "A,7,1200,qpcr,copies/ug,50,0,0,,0,70\nA,28,,qpcr,copies/ug,50,1,0,,0,70\n"
                "B,0,,car_t,10^8 cells,,0,1,0.6,1,60\nB,14,300,il6,pg/mL,,0,0,,0,60\n")


@pytest.mark.parametrize("seed", range(150))
def test_damaged_cohort_tables_read_or_fail_cleanly(tmp_path, seed):
    path = write(tmp_path / "cohort.csv", _damage(np.random.default_rng(seed), COHORT))
    try:
        cohort = read_cohort(path, BASE)
    except CohortTableError as exc:
        assert_clean_error(exc, str(path))
        return
    table = cohort.table  # what was read is valid: the invariants of a patient
    assert len(cohort.scenarios) == table.sizes["patient"] >= 1
    for sc in cohort.scenarios:
        assert 2 <= sc.patient.weight_kg <= 300 and 0 <= sc.patient.marrow_blast_pct < 100
        dose_cells = sc.regimen.car_dose_per_kg * sc.patient.weight_kg
        assert dose_cells == 0 or dose_cells >= 1
        assert all(math.isfinite(getattr(sc.patient, f)) for f in ("height_cm", "crcl_ml_min",
                                                                     "anc_per_ul"))


@pytest.mark.parametrize("seed", range(150))
def test_damaged_observation_files_read_or_fail_cleanly(tmp_path, seed):
    path = write(tmp_path / "obs.csv", _damage(np.random.default_rng(seed), OBSERVATIONS))
    try:
        obs = read_observations(path)
        scenarios = obs.scenarios(Scenario())
    except DataError as exc:
        assert_clean_error(exc, str(path))
        return
    assert len(scenarios) == obs.n_patients >= 1
    assert np.all(np.isfinite(obs.time)) and np.all(obs.dv > 0)
    assert set(obs.patient.tolist()) == set(range(obs.n_patients))  # each has observations
    for k, sc in enumerate(scenarios):
        assert obs.time[obs.patient == k].min() >= min(sc.regimen.ld_days[:1]
                                                       + sc.regimen.car_days[:1])
    cens = obs.cens
    assert np.all(obs.dv[cens] <= obs.lloq[cens] * (1 + 1e-9))
    assert not np.any(obs.dv[~cens] < obs.lloq[~cens])  # NaN LLOQ compares False
