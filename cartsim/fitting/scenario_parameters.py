"""Patient-level scenario fields that a fit estimates like model parameters.

A relapse is decided by the patient's leukaemia, not by the CAR-T parameters: its baseline
burden, its growth rate, its CD7-negative share and its antigen density. In a scenario
these are fields (``patient.*``, ``disease.*``), not model parameters; here they are
declared as fittable individual parameters of the ``cd7`` model, each with a unit, search
bounds and a source, so that :class:`~cartsim.fitting.forward.ForwardModel` can set them per
(patient, parameter vector) and the search, verdict and standard errors of
:mod:`cartsim.fitting.individual` and :mod:`cartsim.fitting.population` treat them as any
other parameter.

They are named in ``fit.parameters`` by their short names (those of
:data:`cartsim.population.spec.COVARIATE_FIELDS` where one exists):

=========================  ==================================  ======  ============  =========
name                       scenario field                      unit    bounds        transform
=========================  ==================================  ======  ============  =========
``marrow_blast_pct``       ``patient.marrow_blast_pct``        %       [0, 100]      logit
``blast_growth_per_day``   ``disease.blast_growth_per_day``    1/day   [1e-3, 2]     log
``cd7neg_blast_fraction``  ``patient.cd7neg_blast_fraction``   1       [1e-9, 1]     log
``cd7_density``            ``disease.cd7_density``             1       [0.01, 10]    log
=========================  ==================================  ======  ============  =========

Observation parameters (:data:`OBSERVATION_PARAMETERS`) are per-patient quantities of the
assay, not of the dynamics: they change what a patient's blood sample shows of the same
simulated body, so the forward model passes them to the model's observables (as per-patient
``info`` arrays) and never into the equations:

=========================  =====================================  ======  ============  =====
name                       replaces                               unit    bounds        transf.
=========================  =====================================  ======  ============  =====
``f_blood_blast``          physiology ``f_blood_blast`` of cd7    1       [1e-5, 0.5]   log
=========================  =====================================  ======  ============  =====

Not fitted, the observables use the physiology constant, so a simulation or a fit that does
not name them is unchanged.

The start value of a fit is the patient's scenario value (a data covariate such as
``BLAST [%]``, else the base scenario's), unless ``fit.init`` names one; the estimate
replaces that value for the patient. Transforms follow
:func:`~cartsim.fitting.transforms.default_transform` (log for a lower bound > 0, logit for a
bounded quantity starting at 0) and can be overridden with ``fit.transforms``.
"""

from __future__ import annotations

from typing import NamedTuple

from cartsim.parameters.base import Parameter
from cartsim.parameters.cd7 import CD7_PHYSIOLOGY
from cartsim.scenario import Disease, Patient

__all__ = ["OBSERVATION_PARAMETERS", "SCENARIO_PARAMETERS", "ScenarioParameter",
           "observation_parameters", "scenario_parameters"]


class ScenarioParameter(NamedTuple):
    """A fittable scenario field: its dotted key and its bounds, unit and source."""

    key: str
    spec: Parameter


def _p(key: str, name: str, unit: str, lower: float, upper: float, source: str,
       description: str) -> ScenarioParameter:
    section, fld = key.split(".")
    default = getattr({"patient": Patient, "disease": Disease}[section](), fld)
    return ScenarioParameter(key, Parameter(name, float(default), unit, lower, upper, source,
                                            description))


SCENARIO_PARAMETERS: dict[str, ScenarioParameter] = {s.spec.name: s for s in [
    _p("patient.marrow_blast_pct", "marrow_blast_pct", "%", 0.0, 100.0,
       "the scenario's range (patient.marrow_blast_pct in [0, 100)); logit: a percentage",
       "marrow blasts at lymphodepletion (baseline burden)"),
    _p("disease.blast_growth_per_day", "blast_growth_per_day", "1/day", 1e-3, 2.0,
       "upper: the scenario's range (disease.blast_growth_per_day <= 2); lower 1e-3 1/day "
       "(doubling time ~2 years), assumption: slower than any leukaemia regrowth after "
       "therapy, and a log search needs a positive bound",
       "net blast proliferation rate at low burden (CD7+ and CD7- blasts)"),
    _p("patient.cd7neg_blast_fraction", "cd7neg_blast_fraction", "1", 1e-9, 1.0,
       "upper: a fraction; lower 1e-9 as the cohort spec's bound "
       "(cartsim.population.spec, ~1 cell of 1e12 blasts), assumption. log, not logit: the "
       "fraction spans orders of magnitude, and a logit bound test would call every fraction "
       "below 1e-3 'on its bound'",
       "CD7-negative fraction of blasts at baseline"),
    _p("disease.cd7_density", "cd7_density", "1", 0.01, 10.0,
       "upper: the scenario's range (disease.cd7_density <= 10); lower 0.01, assumption: "
       "below 1% of T-ALL density a blast is CD7-negative for the CAR (fit "
       "cd7neg_blast_fraction instead), and a log search needs a positive bound",
       "CD7 antigen density on blasts relative to T-ALL blasts"),
]}
"""Short name -> (dotted scenario key, :class:`~cartsim.parameters.base.Parameter` with the
unit, search bounds and source; its ``value`` is the scenario's default)."""

_MODELS_WITH_BLASTS = ("cd7",)
"""Models whose scenario fields above act on the equations (``stein2019`` has no blasts)."""


def scenario_parameters(model_name: str) -> dict[str, ScenarioParameter]:
    """The scenario fields a fit of ``model_name`` may estimate (none for ``stein2019``)."""
    return dict(SCENARIO_PARAMETERS) if model_name in _MODELS_WITH_BLASTS else {}


def _blood_blast_fraction() -> Parameter:
    default = CD7_PHYSIOLOGY["f_blood_blast"]
    return Parameter(
        "f_blood_blast", float(default.value), default.unit, 1e-5, 0.5,
        "start: the cd7 physiology constant (assumption: few T-ALL blasts circulate at low "
        "burden); per patient because the share of blasts in blood varies between patients "
        "and lineages: blood MRD is comparable to marrow MRD in T-ALL but 1-3 logs lower in "
        "precursor-B-ALL (van der Velden et al. 2002 Leukemia 16:1432; Coustan-Smith et al. "
        "2002 Blood 100:52), and blood counts of thousands of blasts per uL (leukaemic "
        "phase) need a much larger share. Bounds: upper the physiology range (0.5); lower "
        "1e-5, assumption: about 3 logs (the B-lineage blood/marrow gap) below the default; "
        "log, as the share spans orders of magnitude",
        "fraction of all blasts that circulate in blood (the blood-blast analytes and the "
        "blood DNA of the qPCR denominator)")


OBSERVATION_PARAMETERS: dict[str, ScenarioParameter] = {
    "f_blood_blast": ScenarioParameter("observation.f_blood_blast", _blood_blast_fraction()),
}
"""Short name -> (``observation.<name>``, :class:`~cartsim.parameters.base.Parameter` with the
unit, search bounds and source; its ``value`` is the model's physiology constant). The forward
model passes a fitted value to the observables as the per-patient ``info[name]``."""


def observation_parameters(model_name: str) -> dict[str, ScenarioParameter]:
    """The per-patient observation parameters a fit of ``model_name`` may estimate (none for
    ``stein2019``)."""
    return dict(OBSERVATION_PARAMETERS) if model_name in _MODELS_WITH_BLASTS else {}
