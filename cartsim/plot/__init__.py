"""Figures of cartsim results: trajectories, cohorts, a patient's story, trial endpoints.

Every function takes a Dataset (a :func:`cartsim.simulate` result, an endpoints Dataset,
or observed data) and an optional matplotlib Axes, draws into it and returns the Axes
(multi-panel figures return the Figure); none calls ``plt.show()``. Units are on the
axes; y axes are logarithmic where the values span decades. A new figure is made without
pyplot unless pyplot is already imported (notebooks), so batch jobs keep no global state.

Names are imported lazily (matplotlib loads on first use), like :mod:`cartsim`:

=================================== ==========================================================
:func:`trajectory`                  one variable against time, regimen marked, observed overlaid
:func:`trajectories`                several variables, one panel each
:func:`cohort`                      spaghetti and percentile bands of a virtual cohort
:func:`patient_story`               one patient: LD drugs, CAR-T, blasts, T cells, cytokines, CRS
:func:`swimmer`                     responses, relapses and deaths per patient
:func:`waterfall`                   deepest marrow blast reduction per patient
:func:`kaplan_meier`                PFS/OS with 95% bands, censoring ticks, numbers at risk
:func:`endpoint_bars`               endpoint probabilities with exact 95% CIs, cohorts side by side
:func:`what_if_figure`              regimens side by side (with :func:`run_what_if`)
:func:`observed_data`               observed data in the plots' convention (BLQ as censored)
:func:`mark_regimen`                shade lymphodepletion, mark CAR-T infusion on any Axes
=================================== ==========================================================
"""

from __future__ import annotations

from cartsim._lazy import lazy_exports

# Lazy export map: public name -> (module, attribute). Extend it here for new plot modules.
_LAZY = {
    # trajectories and observed data (cartsim/plot/timecourse.py, observed.py, _common.py)
    "trajectory": ("cartsim.plot.timecourse", "trajectory"),
    "trajectories": ("cartsim.plot.timecourse", "trajectories"),
    "cohort": ("cartsim.plot.timecourse", "cohort"),
    "observed_data": ("cartsim.plot.observed", "observed_data"),
    "as_observed": ("cartsim.plot.observed", "as_observed"),
    "overlay_observed": ("cartsim.plot.observed", "overlay_observed"),
    "mark_regimen": ("cartsim.plot._common", "mark_regimen"),
    # one patient's story (story.py)
    "patient_story": ("cartsim.plot.story", "patient_story"),
    "surrogate_crs_grade": ("cartsim.plot.story", "surrogate_crs_grade"),
    # trial endpoints (clinical.py, km.py)
    "swimmer": ("cartsim.plot.clinical", "swimmer"),
    "waterfall": ("cartsim.plot.clinical", "waterfall"),
    "blast_change": ("cartsim.plot.clinical", "blast_change"),
    "endpoint_bars": ("cartsim.plot.clinical", "endpoint_bars"),
    "endpoint_probabilities": ("cartsim.plot.clinical", "endpoint_probabilities"),
    "kaplan_meier": ("cartsim.plot.km", "kaplan_meier"),
    # dosing what-if (whatif.py)
    "run_what_if": ("cartsim.plot.whatif", "run_what_if"),
    "what_if_figure": ("cartsim.plot.whatif", "what_if_figure"),
    "WhatIf": ("cartsim.plot.whatif", "WhatIf"),
    # --- goodness of fit (cartsim/plot/gof.py)
    "plot_gof": ("cartsim.plot.gof", "plot_gof"),
    "plot_obs_vs_pred": ("cartsim.plot.gof", "plot_obs_vs_pred"),
    "plot_residuals": ("cartsim.plot.gof", "plot_residuals"),
    "plot_residual_panels": ("cartsim.plot.gof", "plot_residual_panels"),
    "plot_individual_fits": ("cartsim.plot.gof", "plot_individual_fits"),
    "plot_vpc": ("cartsim.plot.gof", "plot_vpc"),
    "vpc_statistics": ("cartsim.plot.gof", "vpc_statistics"),
    # --- sweeps (cartsim/plot/sweep.py)
    "plot_window": ("cartsim.plot.sweep", "plot_window"),
    "plot_dose_response": ("cartsim.plot.sweep", "plot_dose_response"),
    "plot_sensitivity": ("cartsim.plot.sweep", "plot_sensitivity"),
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
