"""Virtual-trial reporting: the endpoints Dataset as a clinical paper's tables and KM figure.

* :func:`trial_summary` - rows (section, endpoint, n, N, value, CI, text) like Tables 2-3;
* :func:`format_trial_summary` - those rows as compact terminal text;
* :func:`write_trial_report` - ``trial_summary.csv``, ``trial_summary.md``, ``trial_km.png``;
* :func:`survival_curves` - the Kaplan-Meier PFS and OS curves behind the report;
* :func:`write_trial` - every file of a trial (endpoints, tables, KM figure, trajectories,
  optionally ``report.html``), what ``cartsim task=trial`` writes.

The rows themselves are computed in the analysis layer (:mod:`cartsim.clinical.table`).
"""

from __future__ import annotations

from cartsim.clinical.table import SECTIONS, survival_curves, trial_summary
from cartsim.reporting.files import format_trial_summary, write_trial_report
from cartsim.reporting.outputs import write_trial

__all__ = ["SECTIONS", "format_trial_summary", "survival_curves", "trial_summary",
           "write_trial", "write_trial_report"]
