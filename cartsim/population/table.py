"""Read a cohort of real (or hand-made) patients from a CSV or Parquet table.

One row per patient. Each header cell is a field name and its unit in
brackets, ``weight [kg]``, except ``patient_id``. Values are converted to the
Scenario's canonical units (:data:`~cartsim.population.spec.COVARIATE_FIELDS`)
and every patient becomes a validated :class:`~cartsim.scenario.Scenario`
built from a base scenario; fields without a column keep the base value.

* ``patient_id`` (required, no unit): any text, unique;
* ``weight`` (required) -> patient.weight_kg: kg, g, lb;
* ``height`` (required) -> patient.height_cm: cm, m, in;
* ``marrow_blasts`` (required) -> patient.marrow_blast_pct: %, fraction;
* ``crcl`` -> patient.crcl_ml_min: mL/min, L/h;
* ``cd7neg_blast_fraction`` -> patient.cd7neg_blast_fraction: -, 1, fraction, %;
* ``cd7_density`` -> disease.cd7_density (relative to T-ALL blasts): -, 1;
* ``lymphocytes``, ``anc`` -> patient.lymphocytes_per_ul, patient.anc_per_ul:
  cells/uL, /uL, cells/mm3, 10^9/L, G/L, 10^3/uL;
* ``em_volume`` -> disease.em_volume_cm3: cm3, mL, cc;
* ``car_dose`` -> regimen.car_dose_per_kg: cells/kg, 10^6 cells/kg, 10^6/kg;
* ``vcn`` -> product.vcn (vector copies per CAR+ cell of the lot): copies/cell.

The first unit of each is the canonical one. Unit spellings are matched
ignoring case and spaces, ``µ``/``u`` and a leading ``x`` in ``x10^9/L``.
Exact conversion factors: 1 lb = 0.45359237 kg, 1 in = 2.54 cm,
1 L/h = 1000/60 mL/min, 1 mL = 1 cm3, 1 uL = 1 mm3.
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from cartsim.population.draw import Cohort, PatientRejected, build_scenarios, covariate_table
from cartsim.population.spec import COVARIATE_FIELDS
from cartsim.scenario import Scenario, ScenarioError

__all__ = ["COLUMNS", "REQUIRED", "CohortTableError", "read_cohort"]


class CohortTableError(ScenarioError):
    """A cohort table that cartsim cannot read (names the file, row, patient and column)."""


class Column(NamedTuple):
    """A table column: the covariate it fills and its units -> (multiply, divide) to canonical."""

    covariate: str
    units: dict[str, tuple[float, float]]


COUNT_UNITS = {"cells/uL": (1, 1), "/uL": (1, 1), "cells/mm3": (1, 1), "10^9/L": (1000, 1),
               "G/L": (1000, 1), "10^3/uL": (1000, 1), "cells/mL": (1, 1000),
               "cells/L": (1, 1_000_000)}
"""Blood cell concentrations -> (multiply, divide) to cells/uL (also used by cartsim.fitting)."""
PERCENT_UNITS = {"%": (1, 1), "fraction": (100, 1)}
"""Percentages -> (multiply, divide) to %."""
DOSE_PER_KG_UNITS = {"cells/kg": (1, 1), "10^6 cells/kg": (1e6, 1), "10^6/kg": (1e6, 1)}
"""CAR-T doses per body weight -> (multiply, divide) to cells/kg."""
COLUMNS: dict[str, Column] = {
    "weight": Column("weight_kg", {"kg": (1, 1), "g": (1, 1000), "lb": (0.45359237, 1)}),
    "height": Column("height_cm", {"cm": (1, 1), "m": (100, 1), "in": (2.54, 1)}),
    "crcl": Column("crcl_ml_min", {"mL/min": (1, 1), "L/h": (1000, 60)}),
    "marrow_blasts": Column("marrow_blast_pct", PERCENT_UNITS),
    "cd7neg_blast_fraction": Column("cd7neg_blast_fraction",
                                    {"-": (1, 1), "1": (1, 1), "fraction": (1, 1), "%": (1, 100)}),
    "cd7_density": Column("cd7_density", {"-": (1, 1), "1": (1, 1)}),
    "lymphocytes": Column("lymphocytes_per_ul", COUNT_UNITS),
    "anc": Column("anc_per_ul", COUNT_UNITS),
    "em_volume": Column("em_volume_cm3", {"cm3": (1, 1), "mL": (1, 1), "cc": (1, 1)}),
    "car_dose": Column("car_dose_per_kg", DOSE_PER_KG_UNITS),
    "vcn": Column("vcn", {"copies/cell": (1, 1)}),
}
"""Column name -> covariate and accepted units."""
REQUIRED = ("patient_id", "weight", "height", "marrow_blasts")
HEADER = re.compile(r"^\s*([^\[\]]*?)\s*(?:\[([^\[\]]*)\])?\s*$")
"""A column header ``name [unit]`` (the unit optional): groups name and unit."""


def _norm_unit(unit: str) -> str:
    u = unit.replace(" ", "").replace("µ", "u").replace("μ", "u").replace("×", "x").lower()
    u = re.sub(r"^x(?=10\^)", "", u)
    return u.replace("cm^3", "cm3").replace("mm^3", "mm3")


class _Field(NamedTuple):
    cell: str  # the header cell as written
    column: str
    unit: str | None
    factor: tuple[float, float]


def read_cohort(path: str | Path, base: Scenario) -> Cohort:
    """Read one patient per row from a ``.csv``, ``.tsv`` or ``.parquet`` table.

    Parameters
    ----------
    path : the table; see the module docstring for columns and units.
    base : the scenario every patient starts from (fields without a column keep its values).

    Returns
    -------
    Cohort
        Validated scenarios in row order; ``table`` has a ``patient_id`` coordinate
        and ``source`` = the path.

    Raises
    ------
    CohortTableError
        Empty table, missing required or unknown column, a missing or unknown
        unit, an empty, non-numeric or out-of-range value (naming the data
        row, patient_id, column, value and accepted range), a duplicate patient_id.
    ImportError
        A Parquet file without pyarrow installed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise CohortTableError(f"{path}: no such file (a cohort table: .csv, .tsv or "
                               ".parquet)")
    if suffix in (".csv", ".tsv"):
        header, rows, lines = _read_text(path, "\t" if suffix == ".tsv" else ",")
    elif suffix in (".parquet", ".pq"):
        header, rows, lines = _read_parquet(path)
    else:
        raise CohortTableError(f"{path}: unknown table format {suffix!r}: expected a .csv, .tsv "
                               "or .parquet file")
    src = str(path)
    fields = _parse_header(header, src)
    return _cohort(fields, rows, lines, base, src)


DELIMITERS = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}
"""Delimiters recognised in a header written with the wrong one (names for messages)."""


def read_rows(path, delimiter: str = ",", comments: bool = False,
              error: type[ScenarioError] | None = None) -> tuple[list[list[str]], list[int]]:
    """The non-blank rows of a delimited text file (UTF-8, a BOM is dropped) and their line
    numbers.

    Blank lines are layout, not records; with ``comments`` a row whose first cell starts
    with ``#`` is skipped too. Shared by the cohort and the observation readers.

    Raises
    ------
    error (default :class:`CohortTableError`)
        The file does not exist, is not UTF-8 text (naming the line and the byte), is not
        valid CSV, or its header is one cell holding another delimiter (a semicolon- or
        tab-delimited file read as comma-delimited).
    """
    error = error or CohortTableError
    expected = (f"expected a {DELIMITERS[delimiter]}-delimited UTF-8 "
                f"{'CSV' if delimiter == ',' else 'table'}")
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory: {expected}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data[:start].count(b"\n") + 1
        raise error(f"{path}: line {line}: byte {data[start:start + 1]!r} is not UTF-8 text: "
                    f"{expected} (save it as 'CSV UTF-8')") from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, lines = [], []
    try:
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            if comments and row[0].lstrip().startswith("#"):
                continue
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise error(f"{path}: line {reader.line_num}: {exc}: {expected}") from None
    if rows and len(rows[0]) == 1:
        found = [name for d, name in DELIMITERS.items() if d != delimiter and d in rows[0][0]]
        if found:
            raise error(f"{path}: line {lines[0]}: the header {rows[0][0]!r} is one column "
                        f"holding {found[0]}s: {expected}")
    return rows, lines


def _read_text(path: Path, delimiter: str) -> tuple[list[str], list[list[Any]], list[int]]:
    rows, lines = read_rows(path, delimiter)
    if not rows:
        raise CohortTableError(f"{path}: empty table: expected a header row and one row per "
                               "patient")
    header = rows.pop(0)
    lines.pop(0)
    for k, (row, line) in enumerate(zip(rows, lines), 1):
        if len(row) != len(header):
            raise CohortTableError(f"{path}: data row {k} (line {line}) has {len(row)} cells, "
                                   f"expected {len(header)} as in the header {header}")
    return header, rows, lines


def _read_parquet(path: Path) -> tuple[list[str], list[list[Any]], list[int]]:
    try:
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"reading the Parquet table {path} needs pyarrow: pip install pyarrow "
                          "(or pip install 'cartsim[parquet]')") from exc
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise CohortTableError(f"{path}: not a readable Parquet file ({exc}): expected a "
                               "Parquet table with one row per patient") from exc
    header = [str(c) for c in df.columns]
    rows = [list(r) for r in df.itertuples(index=False, name=None)]
    return header, rows, []


def _parse_header(header: list[str], src: str) -> list[_Field]:
    accepted = "patient_id, " + ", ".join(f"{c} [{'|'.join(col.units)}]"
                                          for c, col in COLUMNS.items())
    fields: list[_Field] = []
    for cell in header:
        m = HEADER.match(str(cell))
        name = m.group(1).strip().lower() if m else ""
        unit = m.group(2).strip() if m and m.group(2) is not None else None
        if name == "patient_id":
            if unit is not None:
                raise CohortTableError(f"{src}: column {cell!r}: patient_id takes no unit")
            fields.append(_Field(cell, name, None, (1, 1)))
            continue
        if name not in COLUMNS:
            raise CohortTableError(f"{src}: unknown column {cell!r}: accepted columns are "
                                   f"{accepted}")
        units = COLUMNS[name].units
        match = {_norm_unit(u): u for u in units}.get(_norm_unit(unit)) if unit else None
        if match is None:
            what = "has no unit" if not unit else f"has an unknown unit {unit!r}"
            raise CohortTableError(f"{src}: column {cell!r} {what}: expected '{name} [unit]' "
                                   f"with unit one of {', '.join(units)}")
        fields.append(_Field(cell, name, match, units[match]))
    names = [f.column for f in fields]
    for name in set(names):
        if names.count(name) > 1:
            raise CohortTableError(f"{src}: column {name!r} appears {names.count(name)} times "
                                   f"in the header {list(header)}")
    missing = [r for r in REQUIRED if r not in names]
    if missing:
        raise CohortTableError(f"{src}: missing required column {', '.join(missing)}: the header "
                               f"is {list(header)}; required: {', '.join(REQUIRED)}")
    return fields


def _patient_id(raw: Any) -> str:
    """The identifier as text ("" if missing); a whole float from Parquet reads as an int."""
    if raw is None or type(raw).__name__ == "NAType" or (isinstance(raw, float)
                                                         and math.isnan(raw)):
        return ""
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw).strip()


def _number(raw: Any) -> float | str:
    """The value as a float, or why it is not one."""
    if isinstance(raw, bool) or raw is None:
        return "a number"
    try:
        value = float(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        return "a number"
    return value if math.isfinite(value) else "a finite number"


def _cohort(fields: list[_Field], rows: list[list[Any]], lines: list[int], base: Scenario,
            src: str) -> Cohort:
    if not rows:
        raise CohortTableError(f"{src}: the table has a header but no data rows")
    id_col = [f.column for f in fields].index("patient_id")
    ids = [_patient_id(r[id_col]) for r in rows]

    def where(k: int) -> str:
        line = f" (line {lines[k]})" if lines else ""
        return f"{src}: data row {k + 1}{line} (patient_id {ids[k]!r})"

    seen: dict[str, int] = {}
    for k, pid in enumerate(ids):
        if not pid:
            raise CohortTableError(f"{where(k)}, column 'patient_id': empty; expected an "
                                   "identifier")
        if pid in seen:
            raise CohortTableError(f"{src}: patient_id {pid!r} appears in data rows "
                                   f"{seen[pid] + 1} and {k + 1}; expected unique identifiers")
        seen[pid] = k
    data = [(j, f) for j, f in enumerate(fields) if f.column != "patient_id"]
    values = {COLUMNS[f.column].covariate: np.empty(len(rows)) for _, f in data}
    for k, row in enumerate(rows):
        for j, f in data:
            v = _number(row[j])
            if isinstance(v, str):
                raise CohortTableError(f"{where(k)}, column {f.cell!r}: {row[j]!r} is not "
                                       f"accepted: expected {v} in {f.unit}")
            mul, div = f.factor
            values[COLUMNS[f.column].covariate][k] = v * mul / div
    try:
        scenarios = build_scenarios(base, len(rows), values)
    except PatientRejected as exc:
        k = exc.index
        if exc.name is None:
            raise CohortTableError(f"{where(k)}: {exc.cause}") from exc
        j, f = next((j, f) for j, f in data if COLUMNS[f.column].covariate == exc.name)
        unit = COVARIATE_FIELDS[exc.name].units
        conv = "" if f.factor == (1, 1) else f" = {values[exc.name][k]:g} {unit}"
        raise CohortTableError(f"{where(k)}, column {f.cell!r}: {_raw(rows, k, j)!r} "
                               f"{f.unit}{conv}: {exc.cause}") from exc
    origin = {COLUMNS[f.column].covariate: f"table column {f.cell!r}" for _, f in data}
    table = covariate_table(base, values, len(rows), origin,
                            {"source": src, "columns": "; ".join(f.cell for f in fields)})
    table = table.assign_coords(patient_id=("patient", np.array(ids),
                                            {"long_name": "patient identifier"}))
    return Cohort(scenarios, table)


def _raw(rows: list[list[Any]], k: int, j: int) -> Any:
    """The raw cell at data row ``k`` (0-based), column ``j``."""
    raw = rows[k][j]
    return raw.strip() if isinstance(raw, str) else raw
