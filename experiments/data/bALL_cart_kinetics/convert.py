"""Convert the Monolix tables of this folder into cartsim's observation format.

    .venv/bin/python experiments/data/bALL_cart_kinetics/convert.py

Source: ``Data_PR.csv`` and ``Data_NR.csv`` of the public repository Lunan12/CAR-T-model, the
data set of Liu et al., J Immunother Cancer 2022 (B-ALL, CD19 CAR-T; see README.md here).
Writes ``car_t_cells_per_ul.csv`` (the CAR-T analyte, ``y_ID = 1``, only) next to this script:

* ``ID``: ``PR<n>`` (partial responders, ``Data_PR.csv``) and ``NR<n>`` (non-responders);
* ``ANALYTE = car_cells_per_ul``, ``UNIT = cells/uL``: the repository states no unit; the values
  are consistent with CAR-T cells per uL of blood by flow (README.md), an assumption;
* ``LLOQ = 0.2`` cells/uL on every row and ``CENS = 1`` where ``y <= 0.2``: 0.2 is the floor the
  data use for values below quantification (README.md); values recorded below it are censored
  too (a value under its own LLOQ is not a quantified measurement);
* the value 0 at time 0 is the pre-infusion sample: dropped (the model's level starts at the
  infusion, and a 0 has no log-normal density; as a censored value it would carry no
  information, since every model predicts about 0 there).

The blast analytes (``y_ID`` 2, 3) are not converted (no cartsim analyte for blood blasts).
"""

from __future__ import annotations

import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent
LLOQ = 0.2
"""Lower limit of quantification, cells/uL (the floor value of the source tables, README.md)."""


def convert() -> list[dict]:
    out = []
    for prefix, name in (("PR", "Data_PR.csv"), ("NR", "Data_NR.csv")):
        with open(HERE / name, newline="") as fh:
            for r in csv.DictReader(fh):
                if r["y_ID"].strip() != "1":
                    continue
                t, y = float(r["time"]), float(r["y"])
                if t == 0.0 and y == 0.0:
                    continue  # pre-infusion sample
                cens = int(y <= LLOQ)
                out.append({"ID": f"{prefix}{int(r['ID'])}", "TIME": r["time"],
                            "DV": "" if cens else r["y"], "ANALYTE": "car_cells_per_ul",
                            "UNIT": "cells/uL", "LLOQ": LLOQ, "CENS": cens})
    return out


def main() -> None:
    rows = convert()
    path = HERE / "car_t_cells_per_ul.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {path} ({len(rows)} rows, {len({r['ID'] for r in rows})} patients)")


if __name__ == "__main__":
    main()
