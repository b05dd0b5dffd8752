"""Options of ``cartsim task=fit`` (``conf/fit/``).

A Hydra structured config (plain types only); values are checked in
``__post_init__`` with errors naming ``fit.<field>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cartsim.scenario import ScenarioError

__all__ = ["FIT_METHODS", "INIT_FROM", "FitOptions"]

FIT_METHODS = ("individual", "population")
INIT_FROM = ("auto", "individual", "model")


def _bad(key: str, value, accepted: str) -> ScenarioError:
    return ScenarioError(f"fit.{key}={value!r} is not accepted: expected {accepted}")


@dataclass
class FitOptions:
    """How ``cartsim task=fit`` fits the model to ``data``.

    Attributes
    ----------
    parameters : model parameters to estimate (names of the model's parameter set); for
        ``cd7`` also the patient-level scenario fields ``marrow_blast_pct``,
        ``blast_growth_per_day``, ``cd7neg_blast_fraction``, ``cd7_density`` and the
        observation parameter ``f_blood_blast`` (:mod:`cartsim.fitting.scenario_parameters`).
    method : ``individual`` (maximum likelihood, one patient) or ``population``
        (nonlinear mixed effects by SAEM, all patients).
    patient : ID of the patient of an individual fit (null: the data hold one patient).
    error : analyte -> ``proportional`` (log-normal) or ``combined`` (log-normal plus
        additive); analytes not named are proportional.
    transforms : parameter -> ``log``, ``logit`` or ``none`` (default: log when the lower
        bound is > 0, else logit).
    init : parameter -> start value (model units); default the scenario's value.
    profile : parameters whose profile-likelihood interval is computed (individual fit).
    n_starts : start points screened (the start value, the data-driven start of a
        non-compartmental read and a seeded Sobol design); null: scaled with the number of
        estimated quantities (``cartsim.fitting.individual.default_design``).
    n_local : local optimisations run from the best start points (null: scaled likewise;
        a fit is converged only when the best optimum is reached from at least 2).
    max_iter : iterations per local optimisation.
    sigma_floor : analyte -> lower limit of the residual SD of ln(observation) (-); default
        0.1 (``cartsim.fitting.likelihood.SIGMA_PROP_FLOOR``, tied to assay precision).
    sigma_fixed : analyte -> a fixed residual SD of ln(observation) (-), not estimated.
    censor_below_lloq : treat uncensored values below their row's LLOQ as censored (default:
        such a row is an error naming file and row).
    omega_init : smallest starting random-effect SD (search units, 1.0 ~ 100% CV: large
        starting variances let SAEM explore before it settles, as Monolix does)
        (population fit).
    init_from : where SAEM starts (population fit): ``individual`` (median of quick
        individual fits, their spread for omega), ``model`` (the scenario values or
        ``init``), ``auto`` (``individual`` for the closed-form ``stein2019``, ``model``
        for ODE models, whose individual fits cost about as much as SAEM itself).
    n_chains : independent SAEM runs from different starts (population fit); their spread
        is reported and a disagreement beyond the standard errors is warned about.
    n_explore, n_smooth : SAEM iterations with step 1 and with decreasing step; null: 250
        and 200 for the closed-form ``stein2019`` (Monolix's defaults), 100 and 150 for ODE
        models (each iteration solves every patient's ODE; with 50 smoothing iterations one
        run's Monte Carlo SD of a weakly identified typical value was 0.66 of its standard
        error, too much for restarts to agree, with 150 it was 0.13; issue 17).
    n_rw : random-walk Metropolis-Hastings proposals per patient and SAEM iteration.
    is_samples : importance samples per patient for the population log-likelihood; null:
        1000 for ``stein2019``, 300 for ODE models (``PopulationFit``'s choice; with at least
        100, an ODE model's SAEM ends with the maximum of this likelihood, issue 17).
    n_sim : simulated replicates of the data set for the visual predictive check.
    solver_method : ODE method during the fit (``bdf``, ``rodas4``, ``dp5``, ``dp5_bdf``).
    rtol : ODE relative tolerance during the fit; null: 1e-8 for an individual fit (finite
        differences need smooth predictions), 1e-7 for a population fit (MCMC does not).
    plots : write the goodness-of-fit PNGs.
    """

    parameters: list[str] = field(default_factory=list)
    method: str = "individual"
    patient: str | None = None
    error: dict[str, str] = field(default_factory=dict)
    transforms: dict[str, str] = field(default_factory=dict)
    init: dict[str, float] = field(default_factory=dict)
    profile: list[str] = field(default_factory=list)
    n_starts: int | None = None
    n_local: int | None = None
    max_iter: int = 200
    sigma_floor: dict[str, float] = field(default_factory=dict)
    sigma_fixed: dict[str, float] = field(default_factory=dict)
    censor_below_lloq: bool = False
    omega_init: float = 1.0
    init_from: str = "auto"
    n_chains: int = 3
    n_explore: int | None = None
    n_smooth: int | None = None
    n_rw: int = 1
    is_samples: int | None = None
    n_sim: int = 50
    solver_method: str = "bdf"
    rtol: float | None = None
    plots: bool = True

    def __post_init__(self) -> None:
        if self.method not in FIT_METHODS:
            raise _bad("method", self.method, "one of " + ", ".join(FIT_METHODS))
        if len(set(self.parameters)) != len(self.parameters):
            raise _bad("parameters", list(self.parameters), "names without duplicates")
        for k, v in self.error.items():
            if v not in ("proportional", "combined"):
                raise _bad(f"error.{k}", v, "proportional or combined")
        for k, v in self.transforms.items():
            if v not in ("log", "logit", "none"):
                raise _bad(f"transforms.{k}", v, "log, logit or none")
        for k, v in self.init.items():
            if not isinstance(v, (int, float)) or v != v:
                raise _bad(f"init.{k}", v, "a number")
        for name in self.profile:
            if name not in self.parameters:
                raise _bad("profile", list(self.profile),
                           f"names among fit.parameters ({', '.join(self.parameters)})")
        for key, lo in (("n_starts", 1), ("n_local", 1), ("max_iter", 1), ("n_explore", 1),
                        ("n_smooth", 1), ("n_rw", 0), ("is_samples", 0), ("n_sim", 0),
                        ("n_chains", 1)):
            v = getattr(self, key)
            if v is None and key in ("n_starts", "n_local", "n_explore", "n_smooth",
                                     "is_samples"):
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise _bad(key, v, f"an integer >= {lo}"
                           + (" or null" if key in ("n_starts", "n_local") else ""))
        if (self.n_local is not None and self.n_starts is not None
                and self.n_local > self.n_starts):
            raise _bad("n_local", self.n_local, f"at most fit.n_starts ({self.n_starts})")
        for key in ("sigma_floor", "sigma_fixed"):
            for k, v in getattr(self, key).items():
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v < 10:
                    raise _bad(f"{key}.{k}", v, "an SD of ln(observation) in (0, 10)")
        if not isinstance(self.censor_below_lloq, bool):
            raise _bad("censor_below_lloq", self.censor_below_lloq, "true or false")
        if self.init_from not in INIT_FROM:
            raise _bad("init_from", self.init_from, "one of " + ", ".join(INIT_FROM))
        if not (isinstance(self.omega_init, (int, float)) and 0 < self.omega_init <= 5):
            raise _bad("omega_init", self.omega_init, "a number in (0, 5]")
        from cartsim.scenario import SOLVER_METHODS

        if self.solver_method not in SOLVER_METHODS:
            raise _bad("solver_method", self.solver_method, "one of " + ", ".join(SOLVER_METHODS))
        if self.rtol is not None and not (isinstance(self.rtol, (int, float))
                                          and 1e-12 <= self.rtol <= 1e-3):
            raise _bad("rtol", self.rtol, "a number in [1e-12, 1e-3]")
