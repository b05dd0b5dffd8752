"""What the app shows of a comparison: value boxes, a sentence per scenario, a +/-50%
sensitivity profile, the figures, and the files to download (HTML report, CSV, netCDF).

All of it works on a :class:`cartsim.plot.whatif.WhatIf` and plain values, so the app, the
notebook and the tests share it. Probabilities carry the cohort's exact (Clopper-Pearson) 95%
interval from :func:`cartsim.trial_summary`; with a calibration ensemble, also the model range
(the same patients under each calibrated parameter set). Cellular-kinetics boxes give the
median and the 5th-95th percentile of the cohort (90% of patients like this one).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

SURROGATE_NOTE = ("CRS and ICANS grades are model surrogates computed from simulated "
                  "cytokines, not clinical (ASTCT) grades. This is a simulation of a mechanistic "
                  "model, not a treatment recommendation.")

KINETIC_BOXES = (
    # key, title, endpoint variable, unit, format
    ("cmax", "CAR-T peak in blood (qPCR)", "cmax_qpcr", "copies/\u00b5g", "{:,.0f}"),
    ("tmax", "Day of the CAR-T peak", "tmax_qpcr", "", "day {:.0f}"),
    ("auc", "CAR-T exposure, days 0-28 (area under the qPCR curve)", "auc28_qpcr",
     "copies/\u00b5g \u00d7 day", "{:,.3g}"),
    ("persistence", "CAR-T persistence (last day detectable by qPCR)", "persistence_qpcr",
     "days", "{:.0f}"),
)
RATE_BOXES = (
    # key, title, trial_summary endpoint, function of the endpoints for an ensemble member
    ("mrd_cr", "MRD-negative remission at day 28",
     "MRD-negative (flow, < 1e-4) CR/CRi at day 28"),
    ("cr", "Remission (CR/CRi) at day 28", "CR/CRi (ORR) at day 28"),
    ("crs3", "Severe CRS, grade 3 or more (model surrogate)", "CRS grade >= 3"),
    ("icans", "ICANS, any grade (model surrogate)", "ICANS any grade"),
    ("relapse", "Relapse, among patients in remission", "Relapse (among responders)"),
    ("cd7neg_relapse", "CD7-negative relapses, share of relapses",
     "CD7-negative relapse (among relapses)"),
    ("pfs12", "Alive without relapse or progression at 12 months",
     "PFS at 12 months (day 365)"),
    ("os12", "Alive at 12 months", "OS at 12 months (day 365)"),
)


@dataclass
class Box:
    """One value box: ``title``, the headline ``text``, its ``detail`` (interval), the
    ``value`` as a number (NaN: not estimable), and a stable ``key``."""

    key: str
    title: str
    text: str
    detail: str
    value: float


def _evaluable(ep: xr.Dataset) -> xr.Dataset:
    return ep.isel(patient=np.flatnonzero(ep["evaluable"].values)) if "evaluable" in ep else ep


def kinetic_box(ep: xr.Dataset, key, title, var, unit, fmt) -> Box:
    """Median and 5th-95th percentile of a per-patient value over evaluable patients."""
    v = np.asarray(_evaluable(ep)[var].values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Box(key, title, "none", "not reached in any virtual patient", math.nan)
    med, lo, hi = np.median(v), *np.percentile(v, [5, 95])
    return Box(key, title, f"{fmt.format(med)} {unit}".strip(),
               f"90% of patients: {fmt.format(lo)} to {fmt.format(hi)} (n={v.size})", float(med))


def rate_boxes(ep: xr.Dataset, members: Sequence[xr.Dataset] = ()) -> list[Box]:
    """The probability boxes from :func:`cartsim.trial_summary` rows (95% CI), with the
    members' range (model uncertainty) when given."""
    from cartsim.clinical.table import trial_summary

    rows = {r["endpoint"]: r for r in trial_summary(ep, times_months=(12,))}
    member_rows = [{r["endpoint"]: r for r in trial_summary(m, times_months=(12,))}
                   for m in members]
    out = []
    for key, title, endpoint in RATE_BOXES:
        r = rows[endpoint]
        if not math.isfinite(r["value"]):
            out.append(Box(key, title, "not estimable", r["text"], math.nan))
            continue
        detail = f"95% CI {100 * r['lo']:.0f}-{100 * r['hi']:.0f}%"
        vals = [m[endpoint]["value"] for m in member_rows if math.isfinite(m[endpoint]["value"])]
        if vals:
            detail += f"; model range {100 * min(vals):.0f}-{100 * max(vals):.0f}%"
        if r["stat"] == "proportion":
            detail += f" ({r['n']}/{r['N']})"
        out.append(Box(key, title, f"{100 * r['value']:.0f}%", detail, float(r["value"])))
    return out


def value_boxes(whatif, name: str) -> list[Box]:
    """The value boxes of one scenario of a comparison (computed once per result)."""
    cache = whatif.__dict__.setdefault("_boxes", {})
    if name not in cache:
        ep = whatif.cohorts[name].endpoints
        cache[name] = [kinetic_box(ep, *spec) for spec in KINETIC_BOXES] + \
            rate_boxes(ep, whatif.members.get(name, ()))
    return cache[name]


def summary_sentence(name: str, boxes: Sequence[Box]) -> str:
    """One plain-language sentence of a scenario's boxes."""
    b = {x.key: x for x in boxes}

    def pct(key):
        v = b[key].value
        return "an unknown share" if not math.isfinite(v) else f"{100 * v:.0f}%"

    peak = (f"CAR-T cells peak around {b['tmax'].text} at about {b['cmax'].text}"
            if math.isfinite(b["cmax"].value) else "CAR-T cells do not expand measurably")
    return (f"{name}: {peak}; {pct('mrd_cr')} of patients like this one are in MRD-negative "
            f"remission at day 28, {pct('crs3')} have severe CRS (model surrogate), and "
            f"{pct('relapse')} of those in remission relapse within the follow-up "
            f"({pct('cd7neg_relapse')} of relapses CD7-negative).")


# --- sensitivity ------------------------------------------------------------------------

SENSITIVITY_PARAMETERS = {
    "rho_max": "CAR-T expansion rate",
    "k_kill": "blast killing per CAR-T cell",
    "delta_e": "death rate of effector CAR-T cells",
    "delta_m": "death rate of memory CAR-T cells",
    "k_ag": "antigen needed for half-maximal CAR-T stimulation",
    "s_il6": "IL-6 production",
}
"""Key model parameters of the +/-50% profile (cd7 model), in plain words."""

SENSITIVITY_OUTPUTS = {
    "cmax_qpcr": ("CAR-T peak", "copies/\u00b5g"),
    "persistence_qpcr": ("CAR-T persistence", "days"),
    "il6_peak": ("IL-6 peak", "pg/mL"),
    "t_aplasia_days": ("days of CD7+ T-cell aplasia", "days"),
    "relapse_day": ("day of relapse", "day"),
}
"""Outputs of the typical patient the profile can show."""


def sensitivity(scenario, output: str = "cmax_qpcr", *, factor: float = 0.5,
                parameters: Sequence[str] = tuple(SENSITIVITY_PARAMETERS)) -> list[dict]:
    """A +/-``factor`` one-at-a-time profile of ``output`` for the typical patient.

    Each parameter is set to ``(1 - factor)`` and ``(1 + factor)`` times its value in
    ``scenario`` (clipped to its bounds, :mod:`cartsim.parameters`), all else equal; one
    batch simulation. Returns, per parameter, ``{"parameter", "label", "low", "high",
    "base", "low_value", "high_value"}`` (outputs at the low and high value, the base output,
    the parameter values used).
    """
    import cartsim

    if output not in SENSITIVITY_OUTPUTS:
        raise ValueError(f"output={output!r} is not accepted: expected one of "
                         + ", ".join(SENSITIVITY_OUTPUTS))
    ps = cartsim.get_model(scenario.model.name).parameters
    runs, used = [scenario], []
    for name in parameters:
        p = ps[name]
        base = float(scenario.model.params.get(name, p.value))
        pair = [min(max(base * (1 + s * factor), p.lower), p.upper) for s in (-1, 1)]
        used.append((name, pair))
        for v in pair:
            model = dataclasses.replace(scenario.model, params={**scenario.model.params,
                                                                name: v})
            runs.append(dataclasses.replace(scenario, model=model))
    ep = cartsim.endpoints(cartsim.simulate(runs))
    y = np.asarray(ep[output].values, dtype=float)
    return [{"parameter": name, "label": SENSITIVITY_PARAMETERS.get(name, name),
             "low": float(y[1 + 2 * i]), "high": float(y[2 + 2 * i]), "base": float(y[0]),
             "low_value": pair[0], "high_value": pair[1]} for i, (name, pair) in enumerate(used)]


def sensitivity_figure(profiles: Mapping[str, list[dict]], output: str):
    """Tornado of :func:`sensitivity` profiles, one panel per scenario: the bar runs from the
    output at -50% to the output at +50% of each parameter, the line is the typical value."""
    from cartsim.plot._common import PALETTE, new_axes

    what, unit = SENSITIVITY_OUTPUTS[output]
    names = list(profiles)
    fig, axes = new_axes(1, len(names), figsize=(4.4 * len(names), 3.2), sharey=True)
    for j, name in enumerate(names):
        ax, rows = axes[0, j], profiles[name]
        y = np.arange(len(rows))[::-1]
        for k, r in enumerate(rows):
            ax.barh(y[k], r["low"] - r["base"], left=r["base"], color="#85c1e9", height=0.6,
                    label="parameter -50%" if k == 0 else "_low")
            ax.barh(y[k], r["high"] - r["base"], left=r["base"], color=PALETTE[3],
                    alpha=0.7, height=0.6, label="parameter +50%" if k == 0 else "_high")
        if rows:
            ax.axvline(rows[0]["base"], color="0.2", linewidth=1.0)
        ax.set_yticks(y, [r["label"] for r in rows], fontsize=8)
        ax.set_xlabel(f"{what} ({unit}), this patient", fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.25, axis="x")
    axes[0, 0].legend(fontsize=7, frameon=False, loc="lower right")
    return fig


# --- figures ----------------------------------------------------------------------------

TRAJECTORY_ROWS = ("car_copies_per_ug", "car_cells_per_ul", "marrow_blast_pct",
                   "t_cd7pos_per_ul", "il6")
"""Rows of the trajectory figure: qPCR, flow, marrow blasts (with the CD7-negative clone),
normal CD7+ (and CD7-) T cells, IL-6 (with IFN-gamma, IL-10, TNF-alpha)."""


def figures(whatif, *, individual: int = 0, observed=None, t_end: float | None = None,
            sensitivity_profiles=None, sensitivity_output: str = "cmax_qpcr") -> dict:
    """Figure id -> (caption, matplotlib Figure) of a comparison."""
    from cartsim.plot import endpoint_bars
    from cartsim.plot.whatif import drug_figure, what_if_figure

    t_end = t_end or max(float(sc.output.t_end) for sc in whatif.scenarios.values())
    band = (f"{individual} individual virtual patients" if individual else
            "the 5th-95th percentile band and median of the virtual cohort")
    out = {"trajectories": (
        f"Thick line: this patient with typical parameters; {band} (patients with the same "
        "covariates, differing in how their CAR-T cells expand, persist, kill and make IL-6)"
        + ("; hatched grey: model uncertainty (the patient under each calibrated parameter "
           "set)" if whatif.member_typical else "")
        + ("; black dots: observed data (open triangles: below the limit of quantification)"
           if observed is not None else "") + ".",
        what_if_figure(whatif, TRAJECTORY_ROWS, xlim=(-6.0, t_end), individual=individual,
                       observed=observed))}
    out["drugs"] = ("Lymphodepleting drugs in plasma (typical patient), every 0.05 day: one "
                    "peak per infusion.", drug_figure(whatif))
    ax = endpoint_bars(whatif.endpoints(), members=whatif.member_endpoints() or None)
    out["probabilities"] = ("Share of the virtual cohort with each outcome; thin whisker: 95% "
                            "interval of the cohort"
                            + ("; thick grey: model range over the calibrated parameter sets"
                               if whatif.members else "") + ". CRS/ICANS: model surrogates.",
                            ax.figure)
    if sensitivity_profiles:
        what, _ = SENSITIVITY_OUTPUTS[sensitivity_output]
        out["sensitivity"] = (f"{what} of this patient when one parameter is 50% lower (blue) "
                              "or higher (red), all else equal.",
                              sensitivity_figure(sensitivity_profiles, sensitivity_output))
    return out


# --- downloads --------------------------------------------------------------------------

def value_table(whatif) -> list[dict]:
    """One row per value box and scenario: ``scenario, key, title, value, text, detail``."""
    return [{"scenario": name, "key": b.key, "title": b.title, "value": b.value,
             "text": b.text, "detail": b.detail}
            for name in whatif.cohorts for b in value_boxes(whatif, name)]


def value_table_csv(whatif) -> str:
    """:func:`value_table` as CSV text."""
    import csv
    import io

    buf = io.StringIO()
    rows = value_table(whatif)
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def comparison_dataset(whatif) -> xr.Dataset:
    """Endpoints of every scenario's cohort on a ``scenario`` dimension (the same patients
    under each scenario), with the typical patient's fine-grid course (``typical_*``)."""
    names = list(whatif.cohorts)
    eps = [whatif.cohorts[n].endpoints for n in names]
    ds = xr.concat(eps, dim="scenario", combine_attrs="drop_conflicts", coords="minimal",
                   compat="override")
    typ = xr.concat([whatif.typical[n].isel(patient=0, drop=True) for n in names],
                    dim="scenario", combine_attrs="drop_conflicts", coords="minimal",
                    compat="override")
    for var in ("car_copies_per_ug", "car_cells_per_ul", "marrow_blast_pct",
                "blast_cd7neg_pct", "t_cd7pos_per_ul", "t_cd7neg_per_ul", "il6", "il10",
                "ifng", "tnfa", "flu_conc", "cy_conc"):
        ds[f"typical_{var}"] = typ[var].rename(time="typical_time")
    ds = ds.assign_coords(scenario=names)
    ds["scenario"].attrs["long_name"] = "scenario (regimen) name"
    return ds


def netcdf_bytes(whatif) -> bytes:
    """:func:`comparison_dataset` as netCDF bytes (written by :func:`cartsim.io.write_netcdf`)."""
    import tempfile
    from pathlib import Path

    from cartsim.io import write_netcdf

    ds = comparison_dataset(whatif)
    ds = ds.drop_vars([v for v in ds.variables if ds[v].dtype.kind in "OU" and v != "scenario"])
    with tempfile.TemporaryDirectory() as tmp:
        path = write_netcdf(ds, Path(tmp) / "comparison.nc")
        return path.read_bytes()


def _scenario_rows(whatif) -> list[tuple[str, list[str]]]:
    names = list(whatif.scenarios)
    scs = [whatif.scenarios[n] for n in names]

    def days(v):
        return ", ".join(f"{d:g}" for d in v) or "none"

    return [
        ("Product", [sc.product.label for sc in scs]),
        ("CAR-T dose (cells/kg)", [f"{sc.regimen.car_dose_per_kg:.3g}" for sc in scs]),
        ("Infusion days (share of dose)", [
            ", ".join(f"day {d:g} ({f:.0%})" for d, f in zip(sc.regimen.car_days,
                                                              sc.regimen.car_fractions))
            for sc in scs]),
        ("Fludarabine / cyclophosphamide (mg/m\u00b2/day)",
         [f"{sc.regimen.flu_mg_m2:g} / {sc.regimen.cy_mg_m2:g}" for sc in scs]),
        ("Lymphodepletion days", [days(sc.regimen.ld_days) for sc in scs]),
        ("Tocilizumab", [
            f"when IL-6 > {sc.regimen.toci_il6_threshold:g} pg/mL"
            if sc.regimen.toci_il6_threshold is not None else
            (f"days {days(sc.regimen.toci_days)}" if sc.regimen.toci_days else "none")
            for sc in scs]),
        ("Dexamethasone", [
            f"when IL-6 > {sc.regimen.steroid_il6_threshold:g} pg/mL"
            if sc.regimen.steroid_il6_threshold is not None else
            (f"days {days(sc.regimen.steroid_days)}" if sc.regimen.steroid_days else "none")
            for sc in scs]),
        ("Allogeneic transplant", [
            f"day {sc.regimen.hsct_day:g} ({sc.regimen.hsct_criterion})"
            if sc.regimen.hsct_day is not None else "none" for sc in scs]),
        ("Re-infusion", [
            f"days {days(sc.regimen.reinfusion_days)} at "
            f"{sc.regimen.reinfusion_dose_per_kg:.3g}/kg" if sc.regimen.reinfusion_days
            else "none" for sc in scs]),
        ("Virtual patients", [str(whatif.cohorts[n].endpoints.sizes["patient"])
                              for n in names]),
    ]


def render_report(whatif, figs: Mapping[str, tuple], *,
                  title: str = "cartsim dosing what-if") -> str:
    """The comparison as one self-contained HTML page (no script, no external resource):
    the patient, the scenarios, the value boxes, a sentence per scenario, the figures (PNG
    inline, :func:`cartsim.reporting.html.figure_png`) and each cohort's full results table
    (:func:`cartsim.trial_summary`)."""
    from cartsim.clinical.table import trial_summary
    from cartsim.reporting.html import CSS, figure_png

    esc = html.escape
    names = list(whatif.scenarios)
    first = whatif.scenarios[names[0]]
    pat = first.patient
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{esc(title)}</h1>",
             f'<p class="meta">written {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M UTC}'
             "</p>", f'<p class="note">{esc(SURROGATE_NOTE)}</p>', "<h2>Patient</h2><table>"]
    patient_rows = [
        ("Disease", first.disease.label), ("Body weight", f"{pat.weight_kg:g} kg"),
        ("Height", f"{pat.height_cm:g} cm"),
        ("Marrow blasts", f"{pat.marrow_blast_pct:g}% of marrow cells"),
        ("CD7-negative share of blasts", f"{pat.cd7neg_blast_fraction:g}"),
        ("Extramedullary mass", f"{first.disease.em_volume_cm3:g} cm\u00b3"),
        ("Creatinine clearance", f"{pat.crcl_ml_min:g} mL/min"),
        ("Lymphocytes", f"{pat.lymphocytes_per_ul:g} cells/\u00b5L"),
        ("Neutrophils", f"{pat.anc_per_ul:g} cells/\u00b5L")]
    parts += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in patient_rows]
    parts.append("</table><h2>Scenarios</h2><table><tr><th></th>"
                 + "".join(f"<th>{esc(n)}</th>" for n in names) + "</tr>")
    parts += ["<tr><th>" + esc(k) + "</th>" + "".join(f"<td>{esc(v)}</td>" for v in vals)
              + "</tr>" for k, vals in _scenario_rows(whatif)]
    parts.append("</table><h2>Summary</h2>")
    boxes = {n: value_boxes(whatif, n) for n in names}
    parts += [f"<p>{esc(summary_sentence(n, boxes[n]))}</p>" for n in names]
    parts.append('<table id="value-table"><tr><th></th>'
                 + "".join(f"<th>{esc(n)}</th>" for n in names) + "</tr>")
    for i, b in enumerate(boxes[names[0]]):
        parts.append(f"<tr><th>{esc(b.title)}</th>" + "".join(
            f"<td><b>{esc(boxes[n][i].text)}</b><br><span class=\"meta\">"
            f"{esc(boxes[n][i].detail)}</span></td>" for n in names) + "</tr>")
    parts.append("</table><h2>Figures</h2>")
    for fid, (caption, fig) in figs.items():
        parts.append(f'<figure id="fig-{fid}"><img src="{figure_png(fig)}" '
                     f'alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>')
    parts.append("<h2>Full results of each virtual cohort</h2>")
    for n in names:
        parts.append(f"<h3>{esc(n)}</h3><table><tr><th>outcome</th><th>result</th></tr>")
        parts += [f"<tr><td>{esc(r['endpoint'])}</td><td>{esc(r['text'])}</td></tr>"
                  for r in trial_summary(whatif.cohorts[n].endpoints, times_months=(6, 12))]
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(whatif, figs, path, **kwargs):
    """Write :func:`render_report` to ``path`` atomically (:func:`cartsim.io.write_text`)."""
    from cartsim.io import write_text

    return write_text(render_report(whatif, figs, **kwargs), path)


# --- observed data and running a comparison --------------------------------------------

def read_observed(data: bytes, filename: str = "observations.csv") -> xr.Dataset:
    """An uploaded observation file (the fitting format, :func:`cartsim.read_observations`)
    as observed data for the plots (:mod:`cartsim.plot.observed`): every patient's rows in
    canonical units, censored rows (``CENS=1``/``BLQ=1``) at their LLOQ.

    Raises
    ------
    cartsim.fitting.data.DataError
        The reader's one-line message (file, row, column), naming the file as uploaded.
    """
    import tempfile
    from pathlib import Path

    from cartsim.fitting.data import ANALYTES, DataError, read_observations
    from cartsim.plot.observed import observed_data

    name = Path(filename).name or "observations.csv"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            obs = read_observations(path, dose_from_base=True)
        except DataError as exc:
            raise DataError(str(exc).replace(f"{tmp}/", "").splitlines()[0]) from None
    analyte = np.asarray(obs.analyte, dtype=str)
    cens = np.asarray(obs.cens, dtype=bool)
    value = np.where(cens, np.nan, np.asarray(obs.dv, dtype=float))
    return observed_data(obs.time, value, analyte, [ANALYTES[a].units for a in analyte],
                         lloq=np.where(cens, obs.dv, obs.lloq), blq=cens,
                         patient=[obs.ids[k] for k in obs.patient])


def merge(parts: Sequence) -> object:
    """One :class:`~cartsim.plot.whatif.WhatIf` of several (one per scenario)."""
    from cartsim.plot.whatif import WhatIf

    out = WhatIf()
    for part in parts:
        for f in dataclasses.fields(WhatIf):
            getattr(out, f.name).update(getattr(part, f.name))
    return out


def run_comparison(inputs, *, n_cohort: int = 50, t_end: float = 365.0, seed: int = 0,
                   ensemble=None, ensemble_members: int = 3, progress=None, cancelled=None):
    """:func:`cartsim.plot.run_what_if` one scenario at a time (same seed: the same virtual
    patients under every scenario), calling ``progress(done, total, name)`` before each and
    stopping early (returning ``None``) once ``cancelled()`` is true."""
    from cartsim.app.controls import scenarios
    from cartsim.plot.whatif import run_what_if

    built = scenarios(inputs, t_end=t_end)
    names = list(inputs.regimens)
    parts = []
    for i, name in enumerate(names):
        if cancelled is not None and cancelled():
            return None
        if progress is not None:
            progress(i, len(names), name)
        parts.append(run_what_if(inputs.patient, {name: built[name]},
                                 n_cohort=int(n_cohort), seed=int(seed), t_end=float(t_end),
                                 ensemble=ensemble, ensemble_members=int(ensemble_members)))
    if progress is not None:
        progress(len(names), len(names), "")
    return merge(parts)
