"""Read observed CAR-T kinetics from a long, NONMEM-like CSV table.

One row per record (an observation or a dose), patients identified by ``ID``.
Column names are matched ignoring case; a unit in brackets after a name
(``TIME [h]``, ``weight [kg]``) gives that column's unit.

Columns
-------
``ID`` (required)
    Patient identifier (any text).
``TIME`` (required)
    Time relative to the first CAR-T infusion (day 0; lymphodepletion on
    negative days). Unit from the header, ``TIME [day]`` (default when no
    bracket), ``[d]``, ``[days]``, ``[h]``, ``[hour]``, ``[hours]``, ``[week]``.
``DV``
    Observed value, in the row's ``UNIT``. Must be > 0 on uncensored
    observations (the error model is log-normal: write values below the limit
    of quantification as ``CENS=1``). On a censored row it may be empty.
``ANALYTE`` or ``DVID`` (one required)
    What was measured. ``ANALYTE`` takes a name, ``DVID`` its code:

    ====  =====================  ==========  ==================================================
    DVID  ANALYTE                unit        accepted units (-> factor to canonical)
    ====  =====================  ==========  ==================================================
    1     ``car_copies_per_ug``  copies/ug   copies/ug, copies/ug DNA, copies/ng (x1000),
                                             copies/mg (x1e-3)
    2     ``car_pct_of_t``       %           %, fraction (x100)
    3     ``car_cells_per_ul``   cells/uL    cells/uL, /uL, cells/mm3, cells/mL (x1e-3),
                                             10^9/L, G/L, 10^3/uL (x1000), cells/L (x1e-6)
    4     ``marrow_blast_pct``   %           %, fraction (x100)
    5-8   ``il6``, ``il10``,     pg/mL       pg/mL, ng/L, ng/mL (x1000), ug/L (x1000)
          ``ifng``, ``tnfa``
    9     ``blast_per_ul``       cells/uL    as car_cells_per_ul (blood blasts, CD7+ and CD7-)
    10    ``blast_cd7pos_per_ul``  cells/uL  as car_cells_per_ul (CD7+ blood blasts)
    11    ``blast_cd7neg_per_ul``  cells/uL  as car_cells_per_ul (CD7- blood blasts)
    12    ``blast_cd7neg_pct``   %           %, fraction (x100) (CD7- share of all blasts)
    ====  =====================  ==========  ==================================================

    Aliases: ``qpcr`` = car_copies_per_ug, ``flow_pct`` = car_pct_of_t,
    ``flow_abs`` = car_cells_per_ul, ``blasts`` = marrow_blast_pct, ``blood_blasts`` =
    blast_per_ul. The blast analytes are outputs of the ``cd7`` model (blood blasts are the
    circulating fraction ``f_blood_blast`` of all blasts, :mod:`cartsim.parameters.cd7`).
``UNIT`` (required)
    Unit of ``DV`` (observation rows) or of ``AMT`` (dose rows).
``LLOQ``
    Lower limit of quantification, in the row's ``UNIT``. An uncensored ``DV`` below it
    is an error (a value below the LLOQ is not a quantified measurement), unless the
    reader is asked to censor such rows (``censor_below_lloq=True``,
    ``fit.censor_below_lloq``).
``CENS`` or ``BLQ``
    1 when the value is below the LLOQ (left-censored; the M3 likelihood
    ``P(Y < LLOQ)`` is used), 0 otherwise. A censored row without ``LLOQ``
    takes ``DV`` as the limit (NONMEM M3 convention).
``MDV``
    1 marks an observation row to be ignored (missing value).
``EVID``
    0 observation (default), 1 dose, 2 other event (ignored).
``AMT``
    Dose amount (``EVID=1``), >= 0. The drug is named in ``ANALYTE``
    (``car_t``, ``fludarabine``, ``cyclophosphamide``; ``car_t`` when the file
    has only ``DVID``). Units: CAR-T ``cells/kg``, ``10^6 cells/kg``, or a total
    ``cells``, ``10^6 cells``, ``10^8 cells`` (divided by the weight covariate);
    fludarabine and cyclophosphamide ``mg/m2`` (daily dose).
Covariates
    The columns of a cohort table (:mod:`cartsim.population.table`), e.g.
    ``weight [kg]``, ``height [cm]``, ``marrow_blasts [%]``, ``crcl [mL/min]``,
    with the NONMEM aliases ``WT``, ``HT``, ``CRCL``, ``BLAST``; the unit in
    brackets is required. One value per patient.

Dose records set the patient's scenario: CAR-T dose records give
``regimen.car_days`` (the infusion days, the first one must be day 0: TIME is
relative to it), ``car_fractions`` and ``car_dose_per_kg`` (their sum);
fludarabine / cyclophosphamide records give ``regimen.ld_days`` and the daily
``flu_mg_m2`` / ``cy_mg_m2`` (one daily dose per drug and patient). A patient
without lymphodepletion records keeps the base scenario's lymphodepletion. A patient
without a CAR-T dose record is an error when the model's kinetics depend on the dose
(``cd7``), unless the file is read with ``dose_from_base=True`` (the base scenario's
dose is then used); ``stein2019`` has no dose term. Observations before a patient's first
dose (where the simulation starts), an exact copy of a record, a censoring flag that
contradicts the value and its LLOQ, and a patient without observations are errors too.

Every problem is a :class:`DataError` naming the file, the data row (and
line), the column and what would be accepted.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cartsim.population.table import COLUMNS as COVARIATE_COLUMNS
from cartsim.population.table import (
    COUNT_UNITS,
    DOSE_PER_KG_UNITS,
    HEADER,
    PERCENT_UNITS,
    _norm_unit,
    read_rows,
)
from cartsim.scenario import Scenario, ScenarioError

__all__ = ["ANALYTES", "DOSE_DRUGS", "DataError", "Observations", "read_observations"]


class DataError(ScenarioError):
    """An observed-data table that cartsim cannot read (names file, row, column)."""


@dataclass(frozen=True)
class Analyte:
    """One measurable quantity: the model output it is compared with and its units."""

    name: str
    dvid: int
    units: str
    long_name: str
    accepted: dict[str, float]


_CYTO = {"pg/mL": 1.0, "ng/L": 1.0, "ng/mL": 1000.0, "ug/L": 1000.0}
def _factors(units: dict[str, tuple[float, float]]) -> dict[str, float]:
    """``unit -> (multiply, divide)`` (as the cohort tables keep them) -> ``unit -> factor``."""
    return {u: m / d for u, (m, d) in units.items()}


_PCT = _factors(PERCENT_UNITS)
ANALYTES: dict[str, Analyte] = {a.name: a for a in [
    Analyte("car_copies_per_ug", 1, "copies/ug", "CAR transgene copies per ug genomic DNA (qPCR)",
            {"copies/ug": 1.0, "copies/ugDNA": 1.0, "copies/uggDNA": 1.0, "copies/ng": 1e3,
             "copies/ngDNA": 1e3, "copies/mg": 1e-3}),
    Analyte("car_pct_of_t", 2, "%", "CAR+ cells as % of CD3+ T cells (flow)", _PCT),
    Analyte("car_cells_per_ul", 3, "cells/uL", "CAR-T cells per uL blood (flow)",
            _factors(COUNT_UNITS)),
    Analyte("marrow_blast_pct", 4, "%", "marrow blasts (% of nucleated marrow cells)", _PCT),
    Analyte("il6", 5, "pg/mL", "interleukin-6 (plasma)", _CYTO),
    Analyte("il10", 6, "pg/mL", "interleukin-10 (plasma)", _CYTO),
    Analyte("ifng", 7, "pg/mL", "interferon-gamma (plasma)", _CYTO),
    Analyte("tnfa", 8, "pg/mL", "tumour necrosis factor alpha (plasma)", _CYTO),
    Analyte("blast_per_ul", 9, "cells/uL", "blasts per uL blood, CD7+ and CD7- (flow)",
            _factors(COUNT_UNITS)),
    Analyte("blast_cd7pos_per_ul", 10, "cells/uL", "CD7-positive blasts per uL blood (flow)",
            _factors(COUNT_UNITS)),
    Analyte("blast_cd7neg_per_ul", 11, "cells/uL", "CD7-negative blasts per uL blood (flow)",
            _factors(COUNT_UNITS)),
    Analyte("blast_cd7neg_pct", 12, "%", "CD7-negative blasts as % of all blasts (flow)", _PCT),
]}
"""Analyte name -> DVID, canonical unit and accepted units (unit -> factor to canonical)."""

_ALIASES = {"qpcr": "car_copies_per_ug", "flow_pct": "car_pct_of_t",
            "flow_abs": "car_cells_per_ul", "blasts": "marrow_blast_pct",
            "blood_blasts": "blast_per_ul"}
_BY_DVID = {a.dvid: a.name for a in ANALYTES.values()}

DOSE_DRUGS: dict[str, dict[str, tuple[float, bool]]] = {
    "car_t": {**{u: (f, False) for u, f in _factors(DOSE_PER_KG_UNITS).items()},
              "cells": (1.0, True), "10^6 cells": (1e6, True), "10^8 cells": (1e8, True)},
    "fludarabine": {"mg/m2": (1.0, False)},
    "cyclophosphamide": {"mg/m2": (1.0, False)},
}
"""Dosed drug -> accepted AMT units -> (factor, divide by body weight)."""
_DOSE_ALIASES = {"cart": "car_t", "car-t": "car_t", "car": "car_t", "flu": "fludarabine",
                 "cy": "cyclophosphamide"}

TIME_UNITS = {"day": 1.0, "d": 1.0, "days": 1.0, "h": 1 / 24, "hour": 1 / 24,
              "hours": 1 / 24, "hr": 1 / 24, "week": 7.0, "weeks": 7.0, "wk": 7.0}
"""Accepted units of ``TIME`` -> factor to days."""

DOSE_FREE_MODELS = ("stein2019",)
"""Models whose kinetics do not depend on the CAR-T dose (Stein 2019 has no dose term), so a
patient without a CAR-T dose record can be fitted with them."""

_COV_ALIASES = {"wt": "weight", "ht": "height", "crcl": "crcl", "blast": "marrow_blasts"}
_KNOWN = ("id", "time", "dv", "analyte", "dvid", "unit", "lloq", "cens", "blq", "mdv", "evid",
          "amt", "cmt", "ss", "ii", "rate")


@dataclass
class Observations:
    """Observed data of a cohort, in canonical units (one entry per observation).

    Attributes
    ----------
    source : file the data came from.
    ids : patient identifiers, in order of first appearance.
    patient : index into ``ids`` of every observation.
    time : day since the first CAR-T infusion.
    dv : observed value in the analyte's canonical unit (for a censored
        observation: the LLOQ).
    analyte : analyte name of every observation (a key of :data:`ANALYTES`).
    lloq : lower limit of quantification, canonical unit (NaN: none given).
    cens : True where the value is below the LLOQ (left-censored).
    row : data row number (1-based, header excluded) of every observation.
    covariates : covariate short name (``cartsim.population.spec.COVARIATE_FIELDS``)
        -> one value per patient (canonical unit).
    regimens : per patient, the ``regimen`` fields set by dose records.
    dose_from_base : whether a patient without CAR-T dose records may take the base
        scenario's dose (see :meth:`scenarios`).
    """

    source: str
    ids: list[str]
    patient: np.ndarray
    time: np.ndarray
    dv: np.ndarray
    analyte: np.ndarray
    lloq: np.ndarray
    cens: np.ndarray
    row: np.ndarray
    covariates: dict[str, np.ndarray] = field(default_factory=dict)
    regimens: list[dict[str, Any]] = field(default_factory=list)
    dose_from_base: bool = False

    @property
    def n_patients(self) -> int:
        return len(self.ids)

    @property
    def analytes(self) -> list[str]:
        """Analytes present, in :data:`ANALYTES` order."""
        present = set(self.analyte.tolist())
        return [a for a in ANALYTES if a in present]

    def select(self, ids) -> Observations:
        """The observations of the patients ``ids`` (identifiers or indices), in that order."""
        if isinstance(ids, (str, int, np.integer)):
            ids = [ids]
        idx = [self._index(i) for i in ids]
        keep = np.concatenate([np.flatnonzero(self.patient == k) for k in idx])
        remap = {k: j for j, k in enumerate(idx)}
        return Observations(
            source=self.source, ids=[self.ids[k] for k in idx],
            patient=np.array([remap[k] for k in self.patient[keep]], dtype=np.int64),
            time=self.time[keep], dv=self.dv[keep], analyte=self.analyte[keep],
            lloq=self.lloq[keep], cens=self.cens[keep], row=self.row[keep],
            covariates={k: v[idx] for k, v in self.covariates.items()},
            regimens=[self.regimens[k] for k in idx], dose_from_base=self.dose_from_base)

    def _index(self, key) -> int:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            if not 0 <= key < len(self.ids):
                raise DataError(f"{self.source}: patient index {key} out of range "
                                f"0..{len(self.ids) - 1}")
            return int(key)
        if str(key) not in self.ids:
            raise DataError(f"{self.source}: no patient with ID {key!r}; IDs are "
                            f"{', '.join(self.ids[:20])}{' ...' if len(self.ids) > 20 else ''}")
        return self.ids.index(str(key))

    def scenarios(self, base: Scenario | None = None) -> list[Scenario]:
        """One validated :class:`Scenario` per patient: ``base`` with covariates and regimen.

        Raises
        ------
        DataError
            A patient without a CAR-T dose record when the model's kinetics depend on the
            dose (every model but ``stein2019``) and ``dose_from_base`` is False; an
            observation before the patient's first dose (lymphodepletion or CAR-T), where
            the simulation starts; covariates or doses the scenario does not accept.
        """
        from cartsim.population.draw import PatientRejected, build_scenarios

        base = base or Scenario()
        if base.model.name not in DOSE_FREE_MODELS and not self.dose_from_base:
            for k, reg in enumerate(self.regimens):
                if "car_days" not in reg:
                    raise DataError(
                        f"{self.source}: patient ID {self.ids[k]!r} has no CAR-T dose record: "
                        "expected a row with EVID=1, ANALYTE=car_t, AMT and UNIT (e.g. "
                        "cells/kg) at TIME 0, as the kinetics of model "
                        f"{base.model.name!r} depend on the dose (or read the file with "
                        "dose_from_base=True to give every such patient the base scenario's "
                        "regimen.car_dose_per_kg)")
        try:
            scs = build_scenarios(base, self.n_patients, self.covariates)
        except PatientRejected as exc:
            raise DataError(f"{self.source}: patient ID {self.ids[exc.index]!r}: "
                            f"{exc.cause}") from exc
        out = []
        for k, sc in enumerate(scs):
            reg = self.regimens[k]
            if reg:
                try:
                    sc = dataclasses.replace(sc, regimen=dataclasses.replace(sc.regimen, **reg))
                except ScenarioError as exc:
                    raise DataError(f"{self.source}: dose records of patient ID "
                                    f"{self.ids[k]!r}: {exc}") from exc
            self._check_after_first_dose(k, sc.regimen)
            out.append(sc)
        return out

    def _check_after_first_dose(self, k: int, regimen) -> None:
        """The simulation starts at the first dose (lymphodepletion or CAR-T): an
        observation before it would move the start and let the disease grow from its
        baseline for longer than it did."""
        first = min(regimen.ld_days[:1] + regimen.car_days[:1])
        which = "lymphodepletion" if regimen.ld_days and regimen.ld_days[0] == first else "CAR-T"
        mine = np.flatnonzero(self.patient == k)
        early = mine[self.time[mine] < first]
        if early.size:
            j = early[np.argmin(self.row[early])]
            raise DataError(f"{self.source}: data row {self.row[j]} (ID {self.ids[k]!r}), "
                            f"column TIME: an observation at day {self.time[j]:g} precedes the "
                            f"patient's first dose (day {first:g}, {which}): expected TIME >= "
                            f"{first:g} (day 0 = the first CAR-T infusion), or a dose record "
                            "at the earlier start")


def read_observations(path: str | Path, *, censor_below_lloq: bool = False,
                      dose_from_base: bool = False) -> Observations:
    """Read a long NONMEM-like CSV of observations and doses (see the module docstring).

    Parameters
    ----------
    path : the CSV file.
    censor_below_lloq : an uncensored ``DV`` below its row's ``LLOQ`` becomes a censored
        observation at that LLOQ (default False: such a row is a ``DataError``).
    dose_from_base : a patient without a CAR-T dose record takes the CAR-T dose of the base
        scenario (default False: a ``DataError`` when the model's kinetics depend on the
        dose, see :meth:`Observations.scenarios`).

    Raises
    ------
    DataError
        A file that is not UTF-8, comma-delimited CSV; a missing required column, an
        unknown column, analyte, drug or unit, a non-numeric, NaN or negative value, a
        covariate that varies within a patient, a row repeated exactly, a censored row
        whose ``DV`` is above its ``LLOQ`` (or an uncensored one below it), a patient
        without observations, or dose records the scenario cannot represent; the message
        names the file, data row, line and column.
    """
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise DataError(f"{src}: no such file (data=... must name a CSV file of observations)")
    rows, lines = read_rows(path, comments=True, error=DataError)
    if not rows:
        raise DataError(f"{src}: empty file: expected a header row (ID, TIME, DV, ANALYTE or "
                        "DVID, UNIT, ...) and one row per record")
    header = rows.pop(0)
    lines.pop(0)
    cols, time_factor, covs = _parse_header(header, src)
    obs = _parse_rows(rows, lines, cols, time_factor, covs, src, len(header),
                      censor_below_lloq)
    obs.dose_from_base = bool(dose_from_base)
    return obs


def _parse_header(header, src):
    cols: dict[str, int] = {}
    covs: list[tuple[int, str, str, tuple[float, float]]] = []
    time_factor = 1.0
    for j, cell in enumerate(header):
        m = HEADER.match(cell)
        name = (m.group(1) if m else cell).strip().lower()
        unit = m.group(2).strip() if m and m.group(2) is not None else None
        if name in _KNOWN:
            if name in cols:
                raise DataError(f"{src}: column {cell!r} appears twice in the header")
            cols[name] = j
            if name == "time" and unit is not None:
                if unit.lower() not in TIME_UNITS:
                    raise DataError(f"{src}: column {cell!r} has an unknown time unit {unit!r}: "
                                    f"expected one of {', '.join(TIME_UNITS)}")
                time_factor = TIME_UNITS[unit.lower()]
            elif unit is not None and name != "time":
                raise DataError(f"{src}: column {cell!r}: {name.upper()} takes no unit in the "
                                "header (units of DV, AMT and LLOQ go in the UNIT column)")
            continue
        cov = _COV_ALIASES.get(name, name)
        if cov not in COVARIATE_COLUMNS:
            raise DataError(f"{src}: unknown column {cell!r}: accepted are ID, TIME, DV, ANALYTE, "
                            "DVID, UNIT, LLOQ, CENS, BLQ, MDV, EVID, AMT (CMT, SS, II, RATE are "
                            "ignored) and covariates "
                            + ", ".join(f"{c} [{'|'.join(v.units)}]"
                                        for c, v in COVARIATE_COLUMNS.items()))
        units = COVARIATE_COLUMNS[cov].units
        match = {_norm_unit(u): u for u in units}.get(_norm_unit(unit)) if unit else None
        if match is None:
            what = "has no unit" if not unit else f"has an unknown unit {unit!r}"
            raise DataError(f"{src}: covariate column {cell!r} {what}: expected '{cov} [unit]' "
                            f"with unit one of {', '.join(units)}")
        covs.append((j, cell, COVARIATE_COLUMNS[cov].covariate, units[match]))
    for req in ("id", "time", "unit"):
        if req not in cols:
            raise DataError(f"{src}: missing required column {req.upper()}: the header is "
                            f"{header}; required: ID, TIME, DV, ANALYTE or DVID, UNIT")
    if "analyte" not in cols and "dvid" not in cols:
        raise DataError(f"{src}: missing column ANALYTE or DVID (what each row measured): the "
                        f"header is {header}")
    if "cens" in cols and "blq" in cols:
        raise DataError(f"{src}: both CENS and BLQ columns given: keep one")
    return cols, time_factor, covs


def _num(raw: str, where: str, col: str, what: str = "a number", default=None) -> float:
    text = raw.strip()
    if text == "" or text == ".":
        if default is not None:
            return default
        raise DataError(f"{where}, column {col}: empty: expected {what}")
    try:
        v = float(text)
    except ValueError:
        raise DataError(f"{where}, column {col}: {raw!r} is not accepted: expected "
                        f"{what}") from None
    if not math.isfinite(v):
        raise DataError(f"{where}, column {col}: {raw!r} is not accepted: expected a finite "
                        f"number ({what})")
    return v


def _flag(raw: str, where: str, col: str) -> int:
    v = _num(raw, where, col, "0 or 1", default=0.0)
    if v not in (0.0, 1.0):
        raise DataError(f"{where}, column {col}: {raw!r} is not accepted: expected 0 or 1"
                        + (" (right-censoring, -1, is not supported)" if v == -1 else ""))
    return int(v)


def _analyte(raw_name: str | None, raw_dvid: str | None, where: str) -> str:
    if raw_name is not None and raw_name.strip():
        key = raw_name.strip().lower()
        key = _ALIASES.get(key, key)
        if key not in ANALYTES:
            raise DataError(f"{where}, column ANALYTE: unknown analyte {raw_name!r}: expected one "
                            f"of {', '.join(ANALYTES)} (aliases {', '.join(_ALIASES)})")
        return key
    if raw_dvid is not None and raw_dvid.strip():
        code = _num(raw_dvid, where, "DVID", "an analyte code")
        if code not in _BY_DVID:
            raise DataError(f"{where}, column DVID: unknown code {raw_dvid!r}: expected one of "
                            + ", ".join(f"{k} ({v})" for k, v in _BY_DVID.items()))
        return _BY_DVID[int(code)]
    raise DataError(f"{where}, columns ANALYTE/DVID: empty: expected an analyte name or code")


def _unit_factor(unit: str, accepted: dict, where: str, what: str):
    norm = {_norm_unit(u): u for u in accepted}
    key = _norm_unit(unit)
    if key not in norm:
        raise DataError(f"{where}, column UNIT: unknown unit {unit!r} for {what}: expected one of "
                        f"{', '.join(accepted)}")
    return accepted[norm[key]]


def _parse_rows(rows, lines, cols, time_factor, covs, src, width, censor_below_lloq=False):
    ids: list[str] = []
    obs: dict[str, list] = {k: [] for k in ("patient", "time", "dv", "analyte", "lloq", "cens",
                                            "row")}
    cov_vals: dict[str, list[float | None]] = {c: [] for _, _, c, _ in covs}
    cov_first: dict[tuple[str, int], int] = {}
    doses: list[dict[str, list[tuple[float, float, bool, int]]]] = []
    seen: dict[tuple[str, ...], int] = {}  # a record's cells -> its data row

    def get(r, name):
        j = cols.get(name)
        return r[j] if j is not None else None

    def unique(r, k, where):
        """A record (dose or observation) may appear once: a copy would count twice."""
        key = tuple(c.strip() for c in r)
        if key in seen:
            raise DataError(f"{where}: repeats data row {seen[key]} exactly: expected each "
                            "record once (a copied row would count twice)")
        seen[key] = k

    for k, (r, line) in enumerate(zip(rows, lines), 1):
        where = f"{src}: data row {k} (line {line})"
        if len(r) != width:
            raise DataError(f"{where} has {len(r)} cells, expected {width} as in the header")
        pid = r[cols["id"]].strip()
        if not pid:
            raise DataError(f"{where}, column ID: empty: expected a patient identifier")
        where += f" (ID {pid!r})"
        if pid not in ids:
            ids.append(pid)
            doses.append({})
            for c in cov_vals:
                cov_vals[c].append(None)
        p = ids.index(pid)
        for j, cell, cname, (mul, div) in covs:
            if r[j].strip() in ("", "."):
                continue
            v = _num(r[j], where, repr(cell)) * mul / div
            old = cov_vals[cname][p]
            if old is None:
                cov_vals[cname][p] = v
                cov_first[(cname, p)] = k
            elif not math.isclose(old, v, rel_tol=1e-9):
                raise DataError(f"{where}, column {cell!r}: {r[j]!r} differs from the value in "
                                f"data row {cov_first[(cname, p)]}: a covariate takes one value "
                                "per patient")
        t = _num(r[cols["time"]], where, "TIME") * time_factor
        evid = int(_num(get(r, "evid") or "", where, "EVID", "0, 1 or 2", default=0.0))
        if evid not in (0, 1, 2):
            raise DataError(f"{where}, column EVID: {get(r, 'evid')!r} is not accepted: expected "
                            "0 (observation), 1 (dose) or 2 (other, ignored)")
        unit = r[cols["unit"]].strip()
        if evid == 2:
            continue
        if evid == 1:
            if "amt" not in cols:
                raise DataError(f"{where}: a dose record (EVID=1) needs an AMT column")
            amt = _num(r[cols["amt"]], where, "AMT", "a dose amount >= 0")
            if amt < 0:
                raise DataError(f"{where}, column AMT: {amt!r} is not accepted: expected a dose "
                                "amount >= 0")
            raw = (get(r, "analyte") or "").strip().lower() or "car_t"
            drug = _DOSE_ALIASES.get(raw, raw)
            if drug not in DOSE_DRUGS:
                raise DataError(f"{where}, column ANALYTE: unknown dosed drug {raw!r}: expected "
                                f"one of {', '.join(DOSE_DRUGS)}")
            fac, per_weight = _unit_factor(unit, DOSE_DRUGS[drug], where, f"a {drug} dose")
            unique(r, k, where)
            doses[p].setdefault(drug, []).append((t, amt * fac, per_weight, k))
            continue
        if _flag(get(r, "mdv") or "", where, "MDV"):
            continue
        name = _analyte(get(r, "analyte"), get(r, "dvid"), where)
        fac = _unit_factor(unit, ANALYTES[name].accepted, where, name)
        cens = _flag(get(r, "cens") if "cens" in cols else (get(r, "blq") or ""), where,
                     "CENS" if "cens" in cols else "BLQ")
        lloq = _num(get(r, "lloq") or "", where, "LLOQ", "a limit > 0", default=math.nan)
        if not math.isnan(lloq) and lloq <= 0:
            raise DataError(f"{where}, column LLOQ: {lloq!r} is not accepted: expected a limit > 0")
        if cens:
            dv_raw = get(r, "dv") or ""
            if math.isnan(lloq):
                lloq = _num(dv_raw, where, "DV", "the LLOQ (a censored row without LLOQ takes DV "
                            "as the limit)")
                if lloq <= 0:
                    raise DataError(f"{where}, column DV: {lloq!r} is not accepted as the limit "
                                    "of a censored row: expected > 0")
            elif dv_raw.strip() not in ("", "."):
                value = _num(dv_raw, where, "DV", "a value <= LLOQ on a censored row")
                if value > lloq * (1 + 1e-9):
                    col = "CENS" if "cens" in cols else "BLQ"
                    raise DataError(f"{where}, column {col}: {col}=1 (below the limit of "
                                    f"quantification) contradicts DV {value!r} above the "
                                    f"row's LLOQ {lloq!r}: expected {col}=0 for a quantified "
                                    "value, or a DV <= LLOQ (or empty) on a censored row")
            dv = lloq
        else:
            if "dv" not in cols:
                raise DataError(f"{src}: missing column DV (observed values)")
            dv = _num(r[cols["dv"]], where, "DV", "an observed value > 0")
            if dv <= 0:
                raise DataError(f"{where}, column DV: {dv!r} is not accepted: expected a value "
                                "> 0 (log-normal error); mark values below the limit of "
                                "quantification with CENS=1 (or BLQ=1) and give LLOQ")
            if dv < lloq:  # False when no LLOQ (NaN)
                if not censor_below_lloq:
                    raise DataError(f"{where}, column DV: {dv!r} is below the row's LLOQ "
                                    f"{lloq!r} but not censored: expected CENS=1 (or BLQ=1) "
                                    "for a value below quantification, or a DV >= LLOQ "
                                    "(fit.censor_below_lloq=true censors such rows)")
                cens, dv = 1, lloq
        unique(r, k, where)
        obs["patient"].append(p)
        obs["time"].append(t)
        obs["dv"].append(dv * fac)
        obs["analyte"].append(name)
        obs["lloq"].append(lloq * fac)
        obs["cens"].append(bool(cens))
        obs["row"].append(k)
    if not obs["time"]:
        raise DataError(f"{src}: no observation rows (EVID=0, MDV=0): nothing to fit")
    observed = set(obs["patient"])
    for p, pid in enumerate(ids):
        if p not in observed:
            raise DataError(f"{src}: patient ID {pid!r} has no observation rows (EVID=0, "
                            "MDV=0): expected at least one observation per patient (or "
                            "remove the patient's rows)")
    covariates = {}
    for c, vals in cov_vals.items():
        missing = [ids[i] for i, v in enumerate(vals) if v is None]
        if missing:
            raise DataError(f"{src}: covariate {c} has no value for patient ID {missing[0]!r}")
        covariates[c] = np.array(vals, dtype=np.float64)
    regimens = [_regimen(d, ids[i], covariates, i, src) for i, d in enumerate(doses)]
    return Observations(
        source=src, ids=ids, patient=np.array(obs["patient"], dtype=np.int64),
        time=np.array(obs["time"], dtype=np.float64), dv=np.array(obs["dv"], dtype=np.float64),
        analyte=np.array(obs["analyte"], dtype=object), lloq=np.array(obs["lloq"], np.float64),
        cens=np.array(obs["cens"], dtype=bool), row=np.array(obs["row"], dtype=np.int64),
        covariates=covariates, regimens=regimens)


def _regimen(doses, pid, covariates, i, src) -> dict[str, Any]:
    """Regimen fields from one patient's dose records."""
    out: dict[str, Any] = {}
    car = sorted(doses.get("car_t", []))
    if car:
        weight = covariates.get("weight_kg")
        per_kg = []
        for _t, amt, per_weight, k in car:
            if per_weight:
                if weight is None:
                    raise DataError(f"{src}: data row {k} (ID {pid!r}), column UNIT: a total "
                                    "CAR-T dose needs a weight covariate column (e.g. "
                                    "'WT [kg]'), or give the dose in cells/kg")
                amt = amt / weight[i]
            per_kg.append(amt)
        days = [c[0] for c in car]
        if abs(days[0]) > 1e-9:
            raise DataError(f"{src}: data row {car[0][3]} (ID {pid!r}), column TIME: the first "
                            f"CAR-T dose is at {days[0]:g} day: TIME is counted from the first "
                            "CAR-T infusion, so it must be at TIME 0")
        total = float(sum(per_kg))
        if total <= 0:
            raise DataError(f"{src}: data row {car[0][3]} (ID {pid!r}), column AMT: the CAR-T "
                            "doses sum to 0: expected a positive total dose")
        out.update(car_days=days, car_fractions=[a / total for a in per_kg],
                   car_dose_per_kg=total)
    ld_days: set[float] = set()
    day_sets = {}
    for drug, key in (("fludarabine", "flu_mg_m2"), ("cyclophosphamide", "cy_mg_m2")):
        recs = doses.get(drug, [])
        if not recs:
            continue
        day_sets[drug] = sorted(t for t, _, _, _ in recs)
        amts = {a for _, a, _, _ in recs}
        if len(amts) > 1:
            raise DataError(f"{src}: {drug} records of ID {pid!r} (data rows "
                            f"{', '.join(str(r[3]) for r in recs)}) give different daily doses "
                            f"{sorted(amts)}: the regimen takes one daily dose per drug")
        out[key] = float(amts.pop())
        ld_days.update(t for t, _, _, _ in recs)
    if len(day_sets) == 2 and day_sets["fludarabine"] != day_sets["cyclophosphamide"]:
        raise DataError(f"{src}: ID {pid!r}: fludarabine days {day_sets['fludarabine']} and "
                        f"cyclophosphamide days {day_sets['cyclophosphamide']} differ: the "
                        "regimen gives both drugs on the same lymphodepletion days")
    if ld_days:
        out["ld_days"] = sorted(ld_days)
        for drug, key in (("fludarabine", "flu_mg_m2"), ("cyclophosphamide", "cy_mg_m2")):
            if drug not in doses:
                out[key] = 0.0
    return out
