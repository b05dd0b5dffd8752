"""Writing the trial report: CSV table, Markdown document, KM figure, and a terminal summary.

Every file is written atomically (:mod:`cartsim.io`: a temporary file in the target folder,
then :func:`os.replace`), so a crash never leaves a half-written report behind.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from cartsim.clinical.rows import ROW_KEYS, fmt_num
from cartsim.clinical.settings import MONTH_DAYS
from cartsim.clinical.table import SECTIONS, survival_curves, trial_summary
from cartsim.io import write_bytes, write_text
from cartsim.reporting.km_plot import km_figure

DEFAULT_SURROGATE_NOTE = ("CRS and ICANS grades are model surrogates computed from simulated "
                          "cytokine and expansion trajectories, not clinical assessments "
                          "(the endpoints Dataset carried no 'surrogate_note').")


def format_trial_summary(rows: Sequence[dict]) -> str:
    """Compact text version of :func:`trial_summary` rows, one section after another."""
    width = max((len(r["endpoint"]) for r in rows), default=0)
    lines: list[str] = []
    for section in _sections(rows):
        lines.append(section)
        lines += [f"  {r['endpoint']:<{width}}  {r['text']}" for r in rows
                  if r["section"] == section]
    return "\n".join(lines)


def write_trial_report(ep: xr.Dataset, out_dir, *, title: str = "cartsim virtual trial",
                       times_months: Sequence[float] = (6, 12, 24)) -> dict[str, Path]:
    """Write ``trial_summary.csv``, ``trial_summary.md`` and ``trial_km.png`` into ``out_dir``.

    Parameters
    ----------
    ep : xarray.Dataset
        Per-patient endpoints (``cartsim.endpoints``).
    out_dir : str or Path
        Folder for the files (created if missing).
    title : str
        Title of the Markdown document and the figure.
    times_months : sequence of float
        Kaplan-Meier landmarks, passed to :func:`trial_summary`.

    Returns
    -------
    dict of str to Path
        ``{"csv": ..., "markdown": ..., "km_png": ...}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = trial_summary(ep, times_months=times_months)
    paths = {"csv": out / "trial_summary.csv", "markdown": out / "trial_summary.md",
             "km_png": out / "trial_km.png"}
    write_text(_csv_text(rows), paths["csv"])
    write_text(_markdown(ep, rows, title), paths["markdown"])
    curves = survival_curves(ep)
    fig = km_figure(curves, scale=MONTH_DAYS,
                    title=f"{title}: Kaplan-Meier, 95% CI (N={curves['OS'].n} evaluable)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    write_bytes(buf.getvalue(), paths["km_png"])
    return paths


def _sections(rows: Sequence[dict]) -> list[str]:
    """Sections in the canonical order, then any others in order of appearance."""
    present = list(dict.fromkeys(r["section"] for r in rows))
    return [s for s in SECTIONS if s in present] + [s for s in present if s not in SECTIONS]


def _csv_text(rows: Sequence[dict], fieldnames: Sequence[str] = ROW_KEYS) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fieldnames), lineterminator="\n",
                            extrasaction="ignore")
    writer.writeheader()
    # repr keeps every float digit (and writes NaN as 'nan'), so the CSV reads back exactly
    writer.writerows({k: repr(v) if isinstance(v, float) else v for k, v in r.items()}
                     for r in rows)
    return buf.getvalue()


def _markdown(ep: xr.Dataset, rows: Sequence[dict], title: str) -> str:
    status = np.asarray(ep["status"].values)
    n_fail = int((status != 0).sum())
    attrs = ep.attrs
    lines = [f"# {title}", "",
             f"model `{attrs.get('model', 'unknown')}` | cartsim "
             f"{attrs.get('cartsim_version', 'unknown')} | seed {attrs.get('seed', 'unknown')} | "
             f"N = {ep.sizes['patient']} simulated, {ep.sizes['patient'] - n_fail} evaluable", "",
             "Rates are over evaluable patients with exact (Clopper-Pearson) 95% CIs; survival "
             "is Kaplan-Meier with log-log 95% CIs (NR = not reached); a month is "
             f"{MONTH_DAYS} days and a month-m landmark is read at day round(m * {MONTH_DAYS}).",
             ""]
    for section in _sections(rows):
        lines += [f"## {section}", ""]
        if section == SECTIONS[2]:
            note = attrs.get("surrogate_note") or DEFAULT_SURROGATE_NOTE
            lines += [f"> {line}" for line in str(note).splitlines()] + [""]
        lines += ["| Endpoint | n/N | Result |", "|---|---|---|"]
        lines += [f"| {_cell(r['endpoint'])} | {r['n']}/{r['N']} | {_cell(r['text'])} |"
                  for r in rows if r["section"] == section]
        lines.append("")
    lines += ["## Failed solves", ""]
    if n_fail:
        lines += ["Excluded from every rate, median and survival curve above.", ""]
        lines += [f"- patient {p}: {name} (status {s})" for p, name, s in
                  zip(ep["patient"].values[status != 0], ep["status_name"].values[status != 0],
                      status[status != 0])]
    else:
        lines.append("None: every patient solved.")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


UNCERTAINTY_KEYS = ("section", "endpoint", "stat", "unit", "value", "cohort_lo", "cohort_hi",
                    "model_lo", "model_hi", "k")
"""Columns of ``trial_summary_uncertainty.csv`` (rows of
:func:`cartsim.trial.trial_with_ensemble`)."""


def write_uncertainty_table(rows: Sequence[dict], out_dir) -> Path:
    """Write ``trial_summary_uncertainty.csv`` (atomically) into ``out_dir``; return its path."""
    path = Path(out_dir) / "trial_summary_uncertainty.csv"
    write_text(_csv_text(rows, UNCERTAINTY_KEYS), path)
    return path


def format_uncertainty(rows: Sequence[dict]) -> str:
    """Text table: estimate, cohort 95% interval and model range, named apart."""
    def f(x, stat):
        if not math.isfinite(x):
            return "NA"
        return f"{100 * x:.1f}%" if stat in ("proportion", "km_survival") else fmt_num(x)

    k = rows[0]["k"] if rows else 0
    lines = [f"{'endpoint':<48} {'estimate':>10}  {'cohort interval':<22} "
             f"model range ({k} ensemble members)",
             "cohort: between-patient variability and cohort size at the shipped defaults (95% "
             "CI of rates and KM estimates; the patients' range for medians); model: the "
             "estimate over parameter sets the calibration could not rule out"]
    if rows:
        distinct = rows[0].get("distinct", k)
        ess = rows[0].get("ess", math.nan)
        note = f"the {k} members are {distinct} distinct parameter sets"
        if math.isfinite(ess):
            note += f" of a posterior sample whose effective sample size is {ess:.1f}"
        if distinct < k or (math.isfinite(ess) and ess < k):
            note += ("; with so few the model range understates what the calibration leaves "
                     "open")
        lines.append(note)
    pinned = rows[0].get("pinned", []) if rows else []
    if pinned:
        lines.append("kept at this run's own value (set by the user or the experiment, as in "
                     "the calibration): " + ", ".join(pinned))
    for r in rows:
        if r["stat"] == "count":
            continue
        s = r["stat"]
        lines.append(f"{r['endpoint'][:48]:<48} {f(r['value'], s):>10}  "
                     f"{f(r['cohort_lo'], s) + ' - ' + f(r['cohort_hi'], s):<22} "
                     f"{f(r['model_lo'], s)} - {f(r['model_hi'], s)}")
    return "\n".join(lines)
