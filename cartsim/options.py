"""Every options dataclass of a run, in the schema layer (validation only, no behaviour).

:class:`~cartsim.config.RunConfig` (the app edge) composes these; the studies and engines
that read them import them from here or from their own ``options`` module, never the
other way round, so the schema layer depends on :mod:`cartsim.scenario` alone:

=========================  ======================================  ====================
option                     defined in                              config group
=========================  ======================================  ====================
:class:`TrialOptions`      here                                    ``trial``
:class:`EndpointSettings`  :mod:`cartsim.clinical.settings`        ``conf/endpoints/``
:class:`PopulationSpec`    :mod:`cartsim.population.spec`          ``conf/population/``
:class:`StochasticOptions` :mod:`cartsim.stochastic.options`       ``conf/stochastic/``
:class:`FitOptions`        :mod:`cartsim.fitting.options`          ``conf/fit/``
:class:`SweepSpec`         :mod:`cartsim.sweep.options`            ``conf/sweep/``
:class:`SensitivityOptions` :mod:`cartsim.sweep.options`           ``conf/sensitivity/``
=========================  ======================================  ====================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cartsim.clinical.settings import EndpointSettings
from cartsim.fitting.options import FitOptions
from cartsim.population.spec import PopulationSpec
from cartsim.scenario import ScenarioError
from cartsim.stochastic.options import AgentOptions, StochasticOptions
from cartsim.sweep.options import SensitivityOptions, SweepSpec

__all__ = ["AgentOptions", "EndpointSettings", "FitOptions", "PopulationSpec",
           "SensitivityOptions", "StochasticOptions", "SweepSpec", "TrialOptions"]


@dataclass
class TrialOptions:
    """How ``cartsim task=trial`` runs and what it writes.

    Attributes
    ----------
    cohort_file : a CSV or Parquet table with one row per patient (see
        :func:`cartsim.population.read_cohort` for columns and units); null = draw
        the cohort from ``population``.
    chunk_size : patients integrated and reduced to endpoints at a time (bounds memory).
    save_trajectories : also write every patient's trajectories (``trial_trajectories.nc``).
    title : title of the report.
    html_report : also write ``report.html``, one self-contained page with the scenario,
        the results table and the figures (:mod:`cartsim.reporting.html`, written by the task).
    ensemble : path of a calibration ensemble (``experiments/calibrate.py --posterior``
        writes ``experiments/calibration_results/ensemble.csv``); null = none. When set,
        the trial also runs at its first ``ensemble_members`` parameter sets and writes
        ``trial_summary_uncertainty.csv``: every row with its cohort interval and its model
        range (:func:`trial_with_ensemble`).
    ensemble_members : members of the ensemble to run (>= 1).
    """

    cohort_file: str | None = None
    chunk_size: int = 1000
    save_trajectories: bool = False
    title: str = "cartsim virtual trial"
    html_report: bool = False
    ensemble: str | None = None
    ensemble_members: int = 5

    def __post_init__(self) -> None:
        if not (isinstance(self.chunk_size, int) and self.chunk_size > 0):
            raise ScenarioError(f"trial.chunk_size={self.chunk_size!r} is not accepted: "
                                "expected a positive integer")
        if not (isinstance(self.ensemble_members, int) and self.ensemble_members >= 1):
            raise ScenarioError(f"trial.ensemble_members={self.ensemble_members!r} is not "
                                "accepted: expected an integer >= 1")
        if self.ensemble is not None and not Path(str(self.ensemble)).is_file():
            raise ScenarioError(f"trial.ensemble={self.ensemble!r} is not accepted: expected "
                                "the path of an ensemble file (experiments/calibration_results/"
                                "ensemble.csv) or null")
        if self.cohort_file is not None and not str(self.cohort_file).strip():
            raise ScenarioError("trial.cohort_file='' is not accepted: expected a path to a "
                                ".csv or .parquet file, or null")
