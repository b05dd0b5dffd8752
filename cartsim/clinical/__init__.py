"""Per-patient clinical endpoints of a simulation: kinetics, response, safety, survival.

:func:`endpoints` turns the Dataset of :func:`cartsim.simulate` into one row of
endpoints per patient (the names are the contract the trial report reads);
:class:`EndpointSettings` holds assay limits, response criteria, the SURROGATE
CRS/ICANS thresholds and the death model (:class:`DeathModel`), with a unit and
a source for every number (``conf/endpoints/default.yaml`` mirrors the defaults).
:func:`estimable` says where an endpoint counts (evaluable patient, follow-up reaching
its assessment) and :func:`not_estimable_reason` why it counts nowhere.
"""

from cartsim.clinical.endpoints import endpoints, estimable, not_estimable_reason
from cartsim.clinical.settings import MONTH_DAYS, DeathModel, EndpointSettings

__all__ = ["MONTH_DAYS", "DeathModel", "EndpointSettings", "endpoints", "estimable",
           "not_estimable_reason"]
