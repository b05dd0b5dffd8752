"""A virtual trial as one self-contained HTML page a clinician can open: ``report.html``.

The page holds the scenario (a table of the key choices and the full YAML), the trial
summary table (:func:`cartsim.report.trial_summary`) and the main figures as base64 PNG
``<img>`` elements: Kaplan-Meier PFS/OS, swimmer, waterfall, cohort trajectories of CAR-T,
marrow blasts and IL-6, and endpoint probabilities. No external resource, script or font
is referenced, so the file opens anywhere (e-mail, an air-gapped ward PC) and prints.

A renderer renders: the page shows the trajectories it is given (the result's kept ones,
or ``trajectories=``) and never simulates. ``cartsim task=report``
(:func:`cartsim.tasks.report.run_report_task`) runs the trial exactly as ``task=trial``
(same config, cohort, seed), re-simulates up to 200 patients for the trajectory figures
when the trial kept none (:func:`cartsim.trial.trial_trajectories`), and writes the page
beside the usual trial files.

Every figure shows evaluable patients only (solver status 0), and says how many; an
endpoint that is not estimable (follow-up too short) is left out of the endpoint bars and
named in the caption; with no evaluable patient the page says so and draws no figure.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import html
import io
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

from cartsim.io import write_text
from cartsim.reporting.files import DEFAULT_SURROGATE_NOTE, _sections

__all__ = ["figure_png", "render_html_report", "write_html_report"]

REPORT_FILE = "report.html"

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#1b2631;line-height:1.4;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #d5d8dc;padding-bottom:.2em;
margin-top:1.6em}.meta{color:#566573;font-size:.9em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
th,td{border-bottom:1px solid #e5e8e8;padding:.25em .8em;text-align:left;vertical-align:top}
th{background:#f4f6f6}td.n{white-space:nowrap;color:#566573}
.note{background:#fef9e7;border-left:4px solid #f5b041;padding:.5em 1em;font-size:.9em}
figure{margin:1em 0;page-break-inside:avoid}figure img{max-width:100%;height:auto;
border:1px solid #eaeded}figcaption{font-size:.85em;color:#566573}
pre{background:#f8f9f9;padding:1em;font-size:.8em;overflow:auto;max-height:30em}
.grid{display:flex;flex-wrap:wrap;gap:1em}.grid figure{flex:1 1 480px}
"""


def figure_png(fig, dpi: int = 110) -> str:
    """A matplotlib Figure as a base64 PNG ``data:`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _evaluable_trajectories(ep: xr.Dataset, traj: xr.Dataset | None) -> xr.Dataset | None:
    """The trajectories of the evaluable patients only (None when there are none)."""
    if traj is None:
        return None
    ok = np.asarray(traj["status"].values) == 0 if "status" in traj else \
        np.ones(traj.sizes["patient"], dtype=bool)
    if "patient" in ep.coords and "patient" in traj.coords:
        ev = ep["evaluable"].to_series()
        ids = traj["patient"].values
        ok &= np.array([bool(ev.get(i, False)) for i in ids])
    return traj.isel(patient=np.flatnonzero(ok)) if ok.any() else None


def _figures(ep: xr.Dataset, traj: xr.Dataset | None) -> list[tuple[str, str, str]]:
    """(id, caption, data URI) of every figure of the report (evaluable patients only)."""
    from cartsim.clinical import not_estimable_reason
    from cartsim.plot.clinical import DEFAULT_ENDPOINTS, endpoint_bars, swimmer, waterfall
    from cartsim.plot.km import kaplan_meier
    from cartsim.plot.timecourse import cohort

    out = []
    n_eval = int(np.asarray(ep["evaluable"].values, dtype=bool).sum())
    if n_eval == 0:
        return out
    traj = _evaluable_trajectories(ep, traj)
    fig = _figure(7.0, 4.8)
    kaplan_meier(ep, fig.add_subplot(), title=f"Kaplan-Meier, 95% CI (N={n_eval} evaluable)")
    out.append(("km", "Progression-free and overall survival (Kaplan-Meier, log-log 95% bands, "
                      "censoring ticks, numbers at risk).", figure_png(fig)))
    items = [it for it in DEFAULT_ENDPOINTS if not not_estimable_reason(ep, it[1])]
    gone = sorted({f"{it[0]} ({not_estimable_reason(ep, it[1])})" for it in DEFAULT_ENDPOINTS
                   if it not in items})
    fig = _figure(7.0, 4.2)
    endpoint_bars(ep, fig.add_subplot(), items=items)
    out.append(("endpoints", f"Endpoint rates among the {n_eval} evaluable patients with exact "
                             "95% CIs. CRS and ICANS grades are model surrogates."
                + (f" Not estimable, not drawn: {'; '.join(gone)}." if gone else ""),
                figure_png(fig)))
    n_swim = min(n_eval, 40)
    fig = _figure(8.0, max(3.0, 0.17 * n_swim + 1.4))
    swimmer(ep, fig.add_subplot(), max_patients=40)
    out.append(("swimmer", f"Swimmer plot of the first {n_swim} evaluable patients: lane colour "
                           "= best marrow response; markers = remission, relapse (CD7+ or "
                           "CD7-negative), progression, death.", figure_png(fig)))
    if traj is not None:
        from cartsim.grid import on_endpoint_grid

        n = traj.sizes["patient"]
        daily = on_endpoint_grid(traj)  # what the endpoints read, whatever output.dt
        fig = _figure(8.0, 3.6)
        waterfall(daily, fig.add_subplot())
        out.append(("waterfall", f"Deepest marrow blast reduction (days 0-91) of {n} "
                                 "evaluable patients.", figure_png(fig)))
        t_end = float(daily["time"].values[-1])
        fig = _figure(11.0, 3.4)
        axes = fig.subplots(1, 3)
        for ax, var in zip(axes, ("car_copies_per_ug", "marrow_blast_pct", "il6")):
            cohort(daily, var, ax, xlim=(float(daily["time"].values[0]), min(t_end, 180.0)))
        out.append(("cohort", f"Trajectories of {n} evaluable patients: median, 25-75th and "
                              "5-95th percentile bands and individual courses; grey band = "
                              "lymphodepletion, dashed line = CAR-T infusion.",
                    figure_png(fig)))
        k = _median_patient(ep, traj)
        if k is not None:
            from cartsim.plot.story import STORY_VARIABLES, patient_story

            if all(v in traj for v in STORY_VARIABLES):
                pid = traj["patient"].values[k]
                fig = patient_story(traj, k, endpoints=ep, fig=_figure(9.0, 10.5),
                                    title=f"a typical patient (patient {pid}: median PFS)")
                out.append(("story", f"The course of patient {pid}, whose progression-free "
                                     "survival is the cohort's median: drugs, CAR-T, blasts "
                                     "and the CD7-negative clone, normal cells, cytokines and "
                                     "the surrogate CRS grade.", figure_png(fig, dpi=90)))
    return out


def _median_patient(ep: xr.Dataset, traj: xr.Dataset) -> int | None:
    """Position in ``traj`` of the evaluable patient whose PFS time is nearest the median."""
    ids = traj["patient"].values
    sub = ep.sel(patient=ids) if "patient" in ep.coords else ep.isel(patient=slice(len(ids)))
    ok = np.asarray(sub["evaluable"].values, dtype=bool) & (
        np.asarray(traj["status"].values) == 0 if "status" in traj else True)
    pfs = np.where(ok, np.asarray(sub["pfs_day"].values, dtype=float), np.nan)
    if not np.isfinite(pfs).any():
        return None
    return int(np.nanargmin(np.abs(pfs - np.nanmedian(pfs))))


def _scenario_table(cfg: dict, ep: xr.Dataset) -> list[tuple[str, str]]:
    pat, reg = cfg.get("patient", {}), cfg.get("regimen", {})
    prod, dis = cfg.get("product", {}), cfg.get("disease", {})
    rows = [("product", f"{prod.get('name', '?')}: {prod.get('label', '')}"),
            ("disease", f"{dis.get('name', '?')}: {dis.get('label', '')}"),
            ("lymphodepletion", f"fludarabine {reg.get('flu_mg_m2', '?')} + cyclophosphamide "
                                f"{reg.get('cy_mg_m2', '?')} mg/m\u00b2/day on days "
                                f"{', '.join(f'{d:g}' for d in reg.get('ld_days', []))}"),
            ("CAR-T dose", f"{reg.get('car_dose_per_kg', float('nan')):.3g} CAR+ cells/kg on "
                           f"day(s) {', '.join(f'{d:g}' for d in reg.get('car_days', []))}"
                           + (f" (fractions {reg.get('car_fractions')})"
                              if len(reg.get("car_days", [])) > 1 else "")),
            ("patients", f"{ep.sizes['patient']} simulated, "
                         f"{int(np.asarray(ep['evaluable'].values, bool).sum())} evaluable; "
                         f"cohort {ep.attrs.get('cohort_source', 'drawn')}"),
            ("seed", str(ep.attrs.get("seed", "?"))),
            ("model", f"{ep.attrs.get('model', '?')}, cartsim "
                      f"{ep.attrs.get('cartsim_version', '?')}"),
            ("engine", {"stochastic": "stochastic (one realisation per patient)",
                        "agent": "agent, clonal CAR-T (one realisation per patient)"}
             .get(str(ep.attrs.get("engine", "ode")), "ODE (deterministic)"))]
    if pat and ep.attrs.get("cohort_source", "drawn") != "drawn":
        rows.append(("base patient", ", ".join(f"{k} {v}" for k, v in pat.items())))
    return rows


def render_html_report(ep: xr.Dataset, *, trajectories: xr.Dataset | None = None,
                       title: str = "cartsim virtual trial", scenario=None) -> str:
    """The report page as a string (see :func:`write_html_report`)."""
    from cartsim.clinical.table import SECTIONS, trial_summary

    esc = html.escape
    if scenario is not None:
        cfg_text = yaml.safe_dump(dataclasses.asdict(scenario), sort_keys=False)
    else:
        cfg_text = str(ep.attrs.get("config", ""))
    cfg = yaml.safe_load(cfg_text) or {} if cfg_text else {}
    rows = trial_summary(ep)
    note = ep.attrs.get("surrogate_note") or DEFAULT_SURROGATE_NOTE
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">cartsim {esc(str(ep.attrs.get("cartsim_version", "?")))} | '
        f'written {_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")} | '
        "a simulation, not a prediction for an individual patient</p>",
        f'<p class="note">{esc(str(note))}</p>',
        "<h2>Scenario</h2><table>",
    ]
    parts += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in
              _scenario_table(cfg, ep)]
    parts.append("</table>")
    parts.append("<details><summary>full configuration (YAML)</summary>"
                 f"<pre>{esc(cfg_text)}</pre></details>")
    parts.append("<h2>Figures</h2>")
    figs = _figures(ep, trajectories)
    if not figs:
        n_all = ep.sizes["patient"]
        parts.append(f'<p class="note">No evaluable patient: all {n_all} solves failed (see '
                     "the Population rows below); no figure is drawn.</p>")
    for fid, caption, uri in figs:
        parts.append(f'<figure id="fig-{fid}"><img src="{uri}" alt="{esc(caption)}">'
                     f"<figcaption>{esc(caption)}</figcaption></figure>")
    parts.append("<h2>Results</h2>")
    parts.append('<p class="meta">Rates over evaluable patients with exact (Clopper-Pearson) '
                 "95% CIs; survival Kaplan-Meier with log-log 95% CIs (NR = not reached); a "
                 "month is 30.4375 days.</p>")
    for section in _sections(rows):
        parts.append(f"<h3>{esc(section)}</h3><table><tr><th>endpoint</th><th>n/N</th>"
                     "<th>result</th></tr>")
        if section == SECTIONS[2]:
            parts.insert(len(parts) - 1, f'<p class="note">{esc(str(note))}</p>')
        parts += [f"<tr><td>{esc(r['endpoint'])}</td><td class=\"n\">{r['n']}/{r['N']}</td>"
                  f"<td>{esc(r['text'])}</td></tr>" for r in rows if r["section"] == section]
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html_report(result, path, *, trajectories: xr.Dataset | None = None,
                      scenario=None, title: str | None = None) -> Path:
    """Write a trial as one self-contained HTML page.

    Parameters
    ----------
    result : TrialResult or xarray.Dataset
        A :func:`cartsim.run_trial` result, or its endpoints Dataset.
    path : str or Path
        The HTML file to write (atomically); a directory gets ``report.html``.
    trajectories : xarray.Dataset, optional
        Trajectories for the waterfall, cohort and patient-story figures (default: the
        result's, if it kept them; else those figures are left out:
        :func:`cartsim.trial.trial_trajectories` re-simulates a trial's first patients).
    scenario : Scenario, optional
        The base scenario shown in the report (default: the endpoints' ``config``).
    title : str, optional
        Page title (default: the result's title).

    Returns
    -------
    Path
    """
    ep = result if isinstance(result, xr.Dataset) else result.endpoints
    if trajectories is None and not isinstance(result, xr.Dataset):
        trajectories = result.trajectories
    title = title or getattr(result, "title", None) or ep.attrs.get("title") or \
        "cartsim virtual trial"
    path = Path(path)
    if path.is_dir():
        path = path / REPORT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    page = render_html_report(ep, trajectories=trajectories, title=title, scenario=scenario)
    write_text(page, path)
    return path
