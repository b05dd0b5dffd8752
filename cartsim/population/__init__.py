"""Virtual cohorts: draw patients from a population, or read them from a table.

* :class:`PopulationSpec` / :class:`Covariate` - the ``population`` config:
  covariate distributions (with truncation and a Gaussian copula), the
  probability of extramedullary disease and log-normal random effects on
  model parameters;
* :func:`draw_cohort` - ``(base scenario, spec, seed) -> Cohort``;
* :func:`read_cohort` - ``(CSV/Parquet path, base scenario) -> Cohort``;
* :class:`Cohort` - one validated Scenario per patient and an ``xarray``
  table of what each patient got.
"""

from __future__ import annotations

from cartsim.population.draw import Cohort, draw_cohort
from cartsim.population.spec import COVARIATE_FIELDS, Covariate, PopulationSpec
from cartsim.population.table import CohortTableError, read_cohort

__all__ = ["COVARIATE_FIELDS", "Cohort", "CohortTableError", "Covariate", "PopulationSpec",
           "draw_cohort", "read_cohort"]
