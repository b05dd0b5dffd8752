"""The dosing what-if app in Panel: the same object in a notebook (``app.panel()``) and as a
page (:func:`cartsim.app.serve.serve`).

The controls are those of :mod:`cartsim.app.controls`; a change is checked at once and a
refused value gets the library's one-line message under its control. *Run* simulates each
scenario in a worker thread (the page stays live: a progress bar, and *Cancel* stops before
the next scenario), then redraws the value boxes and figures of :mod:`cartsim.app.results`.
Every element a test or a user needs to find carries a ``cs-...`` CSS class.
"""

from __future__ import annotations

import asyncio
import functools
import html
import io
import math
from pathlib import Path

import panel as pn

from cartsim.app import controls as C
from cartsim.app import results as R

SCENARIO_NAMES = ("A", "B", "C", "D")
ENSEMBLE = Path(__file__).resolve().parents[2] / "experiments" / "calibration_results" / \
    "ensemble.csv"
"""The calibration's plausible parameter sets (in a checkout)."""

STARTING_SCENARIOS = {
    "A": {},
    "B": {"product": "ko", "regimen.car_dose_per_kg": "5e5"},
    "C": {"regimen.car_dose_per_kg": "2e6"},
    "D": {"product": "ns7car"},
}
"""What each scenario starts as: the standard regimen, then a few alternatives."""

CSS = """
.cs-error {color:#b03a2e; font-size:12px; margin-top:-6px}
.cs-box {border:1px solid #d5d8dc; border-radius:6px; padding:4px 8px; margin:3px;
         background:#fbfcfc; width:200px; display:inline-block; vertical-align:top}
.cs-box .t {font-size:11px; color:#566573} .cs-box .v {font-size:18px; font-weight:600}
.cs-box .d {font-size:11px; color:#566573}
"""


def _css_key(key: str) -> str:
    return key.strip("_+").replace(".", "-").replace("_", "-")


class _Field:
    """A control's widget and the line under it where a refused value is explained."""

    def __init__(self, control: C.Control, value, scope: str):
        self.control = control
        cls = f"cs-{scope}-{_css_key(control.key)}"
        if control.kind == C.CHOICE:
            labels = C.option_labels(control.key)
            options = {labels.get(o, o): o for o in control.options}
            self.widget = pn.widgets.Select(name=control.label, options=options, value=value,
                                            css_classes=[cls], sizing_mode="stretch_width")
        else:
            self.widget = pn.widgets.TextInput(name=control.label, value=str(value),
                                               css_classes=[cls], sizing_mode="stretch_width")
        self.error = pn.pane.HTML("", css_classes=["cs-error", f"{cls}-error"], visible=False,
                                  sizing_mode="stretch_width", margin=(0, 10))
        self.view = pn.Column(self.widget, self.error, sizing_mode="stretch_width", margin=0)

    def show(self, message: str | None) -> None:
        self.error.object = html.escape(message or "")
        self.error.visible = bool(message)


class DosingApp:
    """One patient, two to four scenarios side by side.

    Parameters
    ----------
    n_cohort : virtual patients per scenario (the band around the patient).
    t_end : follow-up (days).
    n_scenarios : scenarios shown at start (2-4).
    seed : seed of the virtual cohort (the same patients under every scenario).
    """

    def __init__(self, *, n_cohort: int = 50, t_end: float = 365.0, n_scenarios: int = 2,
                 seed: int = 0):
        pn.extension(raw_css=[CSS])
        self.patient = {c.key: _Field(c, c.default, "patient") for c in C.PATIENT}
        self.scenarios = {}
        for name in SCENARIO_NAMES:
            start = {**C.defaults(C.SCENARIO), **STARTING_SCENARIOS[name]}
            self.scenarios[name] = {c.key: _Field(c, start[c.key], name) for c in C.SCENARIO}
        self.n_scenarios = pn.widgets.RadioButtonGroup(
            name="Scenarios side by side", options=[2, 3, 4], value=int(n_scenarios),
            css_classes=["cs-n-scenarios"])
        self.n_cohort = pn.widgets.IntInput(name="Virtual patients per scenario",
                                            value=int(n_cohort), start=1, end=5000,
                                            css_classes=["cs-n-cohort"])
        self.t_end = pn.widgets.IntInput(name="Follow-up (days)", value=int(t_end), start=30,
                                         end=1825, css_classes=["cs-t-end"])
        self.seed = pn.widgets.IntInput(name="Cohort seed", value=int(seed), start=0,
                                        css_classes=["cs-seed"])
        self.display = pn.widgets.RadioButtonGroup(
            name="Show the cohort as", options={"percentile band": 0,
                                                "20 individual patients": 20},
            value=0, css_classes=["cs-display"])
        self.uncertainty = pn.widgets.Checkbox(
            name="Show model uncertainty (3 calibrated parameter sets; slower)", value=False,
            css_classes=["cs-uncertainty"], disabled=not ENSEMBLE.is_file())
        self.upload = pn.widgets.FileInput(accept=".csv", css_classes=["cs-upload"])
        self.upload_status = pn.pane.HTML("", css_classes=["cs-upload-status"])
        self.run_button = pn.widgets.Button(name="Run", button_type="primary",
                                            css_classes=["cs-run"])
        self.cancel_button = pn.widgets.Button(name="Cancel", button_type="warning",
                                               disabled=True, css_classes=["cs-cancel"])
        self.progress = pn.indicators.Progress(value=0, max=100, visible=False,
                                               css_classes=["cs-progress"], width=250)
        self.status = pn.pane.HTML("Change the controls, then press Run.",
                                   css_classes=["cs-status"])
        self.boxes = pn.pane.HTML("", css_classes=["cs-boxes"], sizing_mode="stretch_width")
        self.summary = pn.pane.HTML("", css_classes=["cs-summary"], sizing_mode="stretch_width")
        self.figure_panes = {k: pn.pane.Matplotlib(None, dpi=80, tight=False, format="png",
                                                   css_classes=[f"cs-fig-{k}"],
                                                   sizing_mode="stretch_width")
                             for k in ("trajectories", "drugs", "probabilities",
                                       "sensitivity")}
        self.captions = {k: pn.pane.HTML("", css_classes=[f"cs-caption-{k}"])
                         for k in self.figure_panes}
        self.sens_output = pn.widgets.Select(
            name="Output", options={f"{v[0]} ({v[1]})": k
                                    for k, v in R.SENSITIVITY_OUTPUTS.items()},
            css_classes=["cs-sens-output"])
        self.sens_button = pn.widgets.Button(name="+/-50% sensitivity profile",
                                             css_classes=["cs-sens-run"])
        self.downloads = [
            pn.widgets.FileDownload(callback=self._report_bytes, filename="whatif_report.html",
                                    label="Download report (HTML)", button_type="success",
                                    css_classes=["cs-download-report"]),
            pn.widgets.FileDownload(callback=self._csv_bytes, filename="whatif_values.csv",
                                    label="Download values (CSV)",
                                    css_classes=["cs-download-csv"]),
            pn.widgets.FileDownload(callback=self._netcdf_bytes, filename="whatif_cohorts.nc",
                                    label="Download cohorts (netCDF)",
                                    css_classes=["cs-download-nc"]),
        ]
        self.result = None
        self.observed = None
        self.errors: dict[str, str] = {}
        self.profiles = None
        self._figs: dict = {}
        self._cancel = False
        self._busy = False
        self._columns = {
            name: pn.Card(*[f.view for f in fields.values()], title=f"Scenario {name}",
                          css_classes=[f"cs-scenario-{name}"], sizing_mode="stretch_width",
                          collapsible=False)
            for name, fields in self.scenarios.items()}
        self._wire()
        self.check()

    # --- reading the controls -------------------------------------------------------

    def active(self) -> list[str]:
        """Names of the scenarios shown."""
        return list(SCENARIO_NAMES[:int(self.n_scenarios.value)])

    def inputs(self) -> C.Inputs:
        """The comparison the controls describe (:func:`cartsim.app.controls.read_inputs`)."""
        return C.read_inputs({k: f.widget.value for k, f in self.patient.items()},
                             {n: {k: f.widget.value for k, f in self.scenarios[n].items()}
                              for n in self.active()})

    def set(self, scope: str, key: str, value) -> None:
        """Set a control as a user would (``app.set("B", "regimen.car_dose_per_kg", "5e5")``)."""
        fields = self.patient if scope == "patient" else self.scenarios[scope]
        fields[key].widget.value = value

    def check(self, *_) -> dict[str, str]:
        """Check every control; show each refused value's message under it. Returns the
        messages (``scope:key`` -> message)."""
        self._toggle()
        self.errors = C.check_inputs(self.inputs(), t_end=float(self.t_end.value))
        for scope, fields in [("patient", self.patient)] + [(n, self.scenarios[n])
                                                            for n in SCENARIO_NAMES]:
            for key, f in fields.items():
                f.show(self.errors.get(f"{scope}:{key}"))
        general = [m for k, m in self.errors.items() if k.endswith(":")]
        self.run_button.disabled = bool(self.errors)
        if self.errors:
            self.status.object = html.escape("Not run: " + (general[0] if general else
                                             "correct the value marked in red."))
        elif not self._busy:
            self.status.object = "Ready: press Run."
        return self.errors

    def _toggle(self) -> None:
        """Show the controls that apply (split days, intervention thresholds or days)."""
        for fields in self.scenarios.values():
            split = fields["_schedule"].widget.value == "split"
            fields["regimen.car_days"].view.visible = split
            fields["regimen.car_fractions"].view.visible = split
            for drug in ("toci", "steroid"):
                mode = fields[f"_{drug}"].widget.value
                fields[f"regimen.{drug}_il6_threshold"].view.visible = mode == "rule"
                fields[f"regimen.{drug}_days"].view.visible = mode == "days"
        for i, name in enumerate(SCENARIO_NAMES):
            self._columns[name].visible = i < int(self.n_scenarios.value)

    def _wire(self) -> None:
        for fields in [self.patient, *self.scenarios.values()]:
            for f in fields.values():
                f.widget.param.watch(self.check, "value")
        self.t_end.param.watch(self.check, "value")
        self.n_scenarios.param.watch(self.check, "value")
        self.disease_watch = self.patient["disease"].widget.param.watch(
            self._disease_changed, "value")
        self.display.param.watch(lambda *_: self.redraw(), "value")
        self.upload.param.watch(self._uploaded, "value")
        self.run_button.on_click(self._run_clicked)
        self.cancel_button.on_click(self._cancel_clicked)
        self.sens_button.on_click(self._sens_clicked)

    def _disease_changed(self, event) -> None:
        """A new disease brings its usual extramedullary mass (empty: the preset's)."""
        self.patient["disease.em_volume_cm3"].widget.value = ""

    # --- observed data ----------------------------------------------------------------

    def load_observed(self, data: bytes, filename: str) -> bool:
        """Read an uploaded observation file; its message on the control when refused."""
        from cartsim import ScenarioError

        try:
            self.observed = R.read_observed(data, filename)
        except ScenarioError as exc:
            self.observed = None
            self.upload_status.object = f'<span class="cs-error">{html.escape(str(exc))}</span>'
            return False
        n = self.observed.sizes["obs"]
        self.upload_status.object = html.escape(f"{filename}: {n} observations, drawn on the "
                                                "plots as black dots.")
        self.redraw()
        return True

    def _uploaded(self, event) -> None:
        if event.new:
            self.load_observed(event.new, self.upload.filename or "observations.csv")

    # --- running ------------------------------------------------------------------------

    def _options(self) -> dict:
        return dict(n_cohort=int(self.n_cohort.value), t_end=float(self.t_end.value),
                    seed=int(self.seed.value),
                    ensemble=ENSEMBLE if self.uncertainty.value else None,
                    ensemble_members=3)

    def run(self) -> bool:
        """Run the comparison now (blocking) and redraw; False when a control is refused."""
        if self.check():
            return False
        self.result = R.run_comparison(self.inputs(), **self._options())
        self.profiles = None
        self.redraw()
        self.status.object = "Done."
        return True

    async def _run_clicked(self, event) -> None:
        if self._busy or self.check():
            return
        self._busy, self._cancel = True, False
        self.run_button.disabled, self.cancel_button.disabled = True, False
        self.progress.value, self.progress.visible = 0, True
        loop = asyncio.get_running_loop()

        def progress(done, total, name):
            def update():
                self.progress.value = int(100 * done / total)
                self.status.object = html.escape(
                    f"Simulating scenario {name} ({done + 1} of {total})..." if name else
                    "Drawing...")
            loop.call_soon_threadsafe(update)

        try:
            result = await loop.run_in_executor(None, functools.partial(
                R.run_comparison, self.inputs(), progress=progress,
                cancelled=lambda: self._cancel, **self._options()))
            if result is None:
                self.status.object = "Cancelled: the figures show the previous run."
            else:
                self.result, self.profiles = result, None
                figs = await loop.run_in_executor(None, self._figures)
                self._show(figs)
                self.status.object = "Done."
        except Exception as exc:  # a failed run is a message on the page, not a traceback
            self.status.object = html.escape(f"The run failed: {str(exc).splitlines()[0]}")
        finally:
            self._busy = False
            self.progress.visible = False
            self.cancel_button.disabled = True
            self.run_button.disabled = bool(self.errors)

    def _cancel_clicked(self, event) -> None:
        self._cancel = True
        self.status.object = "Cancelling after the current scenario..."

    def sensitivity(self) -> None:
        """The +/-50% profile of the chosen output for each scenario's typical patient."""
        if self.result is None:
            self.status.object = "Run first: the profile is of the scenarios shown."
            return
        self.profiles = {n: R.sensitivity(sc, self.sens_output.value)
                         for n, sc in self.result.scenarios.items()}
        self.redraw()

    def _sens_clicked(self, event) -> None:
        self.sensitivity()

    # --- drawing ------------------------------------------------------------------------

    def _figures(self) -> dict:
        return R.figures(self.result, individual=int(self.display.value),
                         observed=self.observed, t_end=float(self.t_end.value),
                         sensitivity_profiles=self.profiles,
                         sensitivity_output=self.sens_output.value)

    def redraw(self) -> None:
        """Redraw the value boxes and figures of the last run (no new simulation)."""
        if self.result is not None:
            self._show(self._figures())

    def _show(self, figs: dict) -> None:
        self._figs = figs
        for key, pane in self.figure_panes.items():
            caption, fig = figs.get(key, ("", None))
            pane.object = fig
            pane.visible = fig is not None
            self.captions[key].object = html.escape(caption)
        self.boxes.object = self.boxes_html()
        self.summary.object = "".join(
            f"<p>{html.escape(R.summary_sentence(n, R.value_boxes(self.result, n)))}</p>"
            for n in self.result.cohorts) + f"<p><i>{html.escape(R.SURROGATE_NOTE)}</i></p>"

    def boxes_html(self) -> str:
        """The value boxes, one row per scenario (each box: ``cs-box cs-box-<key>``)."""
        rows = []
        for name in self.result.cohorts:
            cells = "".join(
                f'<div class="cs-box cs-box-{b.key}" data-scenario="{name}" '
                f'data-value="{b.value if math.isfinite(b.value) else "nan"}">'
                f'<div class="t">{html.escape(b.title)}</div>'
                f'<div class="v">{html.escape(b.text)}</div>'
                f'<div class="d">{html.escape(b.detail)}</div></div>'
                for b in R.value_boxes(self.result, name))
            rows.append(f'<div class="cs-box-row" data-scenario="{name}"><b>Scenario {name}'
                        f"</b><br>{cells}</div>")
        return f"<style>{CSS}</style>" + "".join(rows)

    # --- downloads ----------------------------------------------------------------------

    def _report_bytes(self):
        if self.result is None:
            return io.BytesIO(b"Run the comparison first.")
        return io.BytesIO(R.render_report(self.result, self._figs or self._figures())
                          .encode("utf-8"))

    def _csv_bytes(self):
        if self.result is None:
            return io.BytesIO(b"")
        return io.StringIO(R.value_table_csv(self.result))

    def _netcdf_bytes(self):
        if self.result is None:
            return io.BytesIO(b"")
        return io.BytesIO(R.netcdf_bytes(self.result))

    # --- layout -------------------------------------------------------------------------

    def panel(self):
        """The app as a Panel layout (display it in a notebook, or serve it)."""
        patient = pn.Card(*[f.view for f in self.patient.values()], title="The patient",
                          width=330, collapsible=False)
        settings = pn.Card(
            self.n_scenarios, self.n_cohort, self.t_end, self.seed,
            pn.pane.HTML("Show the virtual cohort as"), self.display, self.uncertainty,
            pn.pane.HTML("Observed data (CSV in cartsim's observation format)"), self.upload,
            self.upload_status, title="Comparison", width=330, collapsible=False)
        runbar = pn.Row(self.run_button, self.cancel_button, self.progress, self.status)
        figures = []
        for key in ("trajectories", "drugs", "probabilities"):
            figures += [self.figure_panes[key], self.captions[key]]
        sens = pn.Column(pn.pane.HTML("<h3>Which model assumption matters most?</h3>"),
                         pn.Row(self.sens_output, self.sens_button),
                         self.figure_panes["sensitivity"], self.captions["sensitivity"])
        main = pn.Column(
            pn.pane.HTML("<h2>Dosing what-if: one patient, several regimens</h2>"
                         "<p>A simulation of a mechanistic model, not a treatment "
                         "recommendation. CRS and ICANS grades are model surrogates.</p>"),
            pn.Row(*self._columns.values(), sizing_mode="stretch_width"), runbar,
            self.boxes, self.summary, *figures, sens, pn.Row(*self.downloads),
            sizing_mode="stretch_width")
        self.check()
        return pn.Row(pn.Column(patient, settings), main, sizing_mode="stretch_width")
