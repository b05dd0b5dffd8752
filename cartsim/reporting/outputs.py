"""Every file of a virtual trial: ``write_trial(result, out_dir)``.

What ``cartsim task=trial`` writes, in one call: the endpoints (``trial_endpoints.nc``),
the results table (``trial_summary.csv``, ``trial_summary.md``), the Kaplan-Meier figure
(``trial_km.png``), the trajectories when the trial kept them (``trial_trajectories.nc``)
and, on request, the self-contained ``report.html``. The result object holds data only;
writing it is this presentation layer's job.
"""

from __future__ import annotations

from pathlib import Path

from cartsim.io import write_netcdf
from cartsim.reporting.files import write_trial_report
from cartsim.reporting.html import REPORT_FILE, write_html_report

__all__ = ["write_trial"]


def write_trial(result, out_dir, *, html: bool | None = None, scenario=None,
                trajectories=None) -> dict[str, Path]:
    """Write a trial's files into ``out_dir`` (created if missing); return name -> path.

    Parameters
    ----------
    result : :class:`cartsim.trial.TrialResult`
    out_dir : the output directory.
    html : also write ``report.html`` (default: ``result.html_report``, set by
        ``trial.html_report``).
    scenario : the base scenario the HTML page shows (default: the endpoints' ``config``).
    trajectories : what the HTML page's trajectory figures show (default: the kept ones).

    Returns
    -------
    dict
        ``endpoints``, ``csv``, ``markdown``, ``km_png``, and ``trajectories`` / ``html``
        when written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"endpoints": write_netcdf(result.endpoints, out / "trial_endpoints.nc")}
    paths.update(write_trial_report(result.endpoints, out, title=result.title))
    if result.trajectories is not None:
        paths["trajectories"] = write_netcdf(result.trajectories, out / "trial_trajectories.nc")
    if result.html_report if html is None else html:
        paths["html"] = write_html_report(result, out / REPORT_FILE, scenario=scenario,
                                          trajectories=trajectories)
    return paths
