"""Options of the stochastic and agent engines (``conf/stochastic/``).

Plain dataclasses (Hydra structured-config compatible: plain types, lists and a
nested dataclass only). Values are checked in ``__post_init__``; an error names the
field as ``stochastic.<field>`` and says what is accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cartsim.scenario import ScenarioError

__all__ = ["AgentOptions", "StochasticOptions", "METHODS"]

METHODS = ("hybrid", "exact", "tau")
"""Accepted ``stochastic.method`` values."""


def _bad(key: str, value, accepted: str) -> ScenarioError:
    return ScenarioError(f"stochastic.{key}={value!r} is not accepted: expected {accepted}")


def _number(key: str, value, lo: float, hi: float = math.inf, lo_open: bool = True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo) and value <= hi
    if not ok:
        rel = ">" if lo_open else ">="
        upper = f" and <= {hi:g}" if math.isfinite(hi) else ""
        raise _bad(key, value, f"a finite number {rel} {lo:g}{upper}")


def _integer(key: str, value, lo: int, hi: int | None = None) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo
    ok = ok and (hi is None or value <= hi)
    if not ok:
        upper = f" and <= {hi}" if hi is not None else ""
        raise _bad(key, value, f"a whole number >= {lo}{upper}")


@dataclass
class AgentOptions:
    """Clonal CAR-T agents of ``engine=agent``.

    Attributes
    ----------
    n_clones : int
        Number of tracked CAR-T clones (barcoded lineages) per realisation; every
        infusion is split evenly between them (-). Assumption: 100 lineages resolve
        clone-size distributions and diversity indices at a cost ~100x the compartment
        engine's CAR-T part.
    clone_cd7 : bool
        Give each clone its own residual-CD7 factor (log-normal around the product's
        ``residual_cd7``, clipped to [0, 1]); off: every clone carries the product value.
    cd7_log_sd : float
        Standard deviation of ln(residual CD7) between clones (-). Assumption: a few-fold
        spread of surface CD7 between edited/PEBL lineages (flow shows broad residual-CD7
        histograms); 0.5 gives a ~1.6-fold geometric SD.
    exhaustion : bool
        Track a per-clone exhaustion level ``e`` that rises under antigen stimulation of
        the clone's effector share (``de/dt = gain S_ag E_k / n_k``),
        slows the clone's expansion by ``1/(1+e)`` and speeds effector -> exhausted
        differentiation by ``(1+e)``; off: all clones share the compartment rates.
    exhaustion_gain : float
        Rise of ``e`` per day at full antigen saturation of an all-effector clone (1/day).
        Assumption: chronic
        stimulation over ~2-3 weeks doubles the exhaustion drive (gain 0.05/day).
    clone_sizes_over_time : bool
        Also return every clone's size at every output time (``clone_size_t``; memory
        replicates x times x clones x 8 bytes); off: final clone sizes and the diversity
        indices over time only.
    """

    n_clones: int = 100
    clone_cd7: bool = False
    cd7_log_sd: float = 0.5
    exhaustion: bool = False
    exhaustion_gain: float = 0.05
    clone_sizes_over_time: bool = False

    def __post_init__(self) -> None:
        _integer("agent.n_clones", self.n_clones, 1, 100_000)
        for key in ("clone_cd7", "exhaustion", "clone_sizes_over_time"):
            if not isinstance(getattr(self, key), bool):
                raise _bad(f"agent.{key}", getattr(self, key), "true or false")
        _number("agent.cd7_log_sd", self.cd7_log_sd, 0.0, 5.0, lo_open=False)
        _number("agent.exhaustion_gain", self.exhaustion_gain, 0.0, 100.0, lo_open=False)


@dataclass
class StochasticOptions:
    """How ``engine=stochastic`` / ``engine=agent`` simulate.

    Attributes
    ----------
    replicates : int
        Independent realisations of the scenario (``task=simulate``); ``task=trial``
        simulates one realisation per virtual patient (-).
    seed : int or None
        Root seed of the replicates' streams (``numpy.random.SeedSequence(seed).spawn``);
        ``None`` uses the scenario's ``seed``.
    method : str
        ``hybrid`` (exact SSA for reactions whose source population is below
        ``exact_threshold`` cells, tau-leaping for the rest), ``exact`` (Gillespie's
        direct method for every reaction: cost grows with the number of cells, only for
        small systems) or ``tau`` (tau-leaping for every reaction; negative populations
        are still prevented by step rejection).
    epsilon : float
        Cao-Gillespie-Petzold (2006) tau-selection error bound: the expected relative
        change of every leaping population in one leap (-). Source: 0.03 is the value
        recommended by Cao, Gillespie & Petzold 2006 J Chem Phys 124:044109.
    exact_threshold : float
        Cells below which a population's reactions are simulated exactly (cells).
        Assumption: above 100 cells extinction within one leap is negligible
        (a clone of 100 cells at death/birth ratio 0.9 dies out with p = 0.9^100 = 3e-5),
        so establishment and extinction are resolved exactly; Cao et al. 2005 use 10.
    langevin_threshold : float
        Expected firings of one reaction in one leap above which the Poisson count is
        drawn from its normal approximation (the chemical Langevin regime) (-).
        Assumption: at 1e7 the Poisson skewness is 3e-4, below any output's precision.
    dt_max : float
        Largest step of the continuous states (drug PK, cytokines) and largest leap
        (day). Steps are further limited by ``continuous_rtol`` and by the stability of
        the explicit Runge-Kutta 4 scheme (3 / fastest clearance rate, ~4.3 h for
        TNF-alpha's 1 h half-life). Assumption: 6 h keeps outputs between daily grid
        points smooth.
    continuous_rtol : float
        Largest relative change of any continuous state in one step (-), with absolute
        scales ``cartsim.stochastic.engine.CONTINUOUS_SCALES``. Assumption: 5% changes per
        step keep the Strang-split RK4 within ~1% of the ODE solution (tested).
    max_steps : int
        Most reaction steps (leaps plus exact firings) per realisation before it is
        stopped with status ``max_steps`` (-).
    agent : AgentOptions
        Clonal options of ``engine=agent``.
    report_days : list of float
        Days at which the derived probabilities (cure, CAR-T loss, CD7- escape) are
        reported (day).
    relapse_blast_pct : float
        Marrow blasts (% of nucleated marrow cells) that define remission (below) and
        relapse (back at or above, after a remission) (%). Source: morphological CR is
        < 5% marrow blasts (NCCN ALL guidelines).
    """

    replicates: int = 100
    seed: int | None = None
    method: str = "hybrid"
    epsilon: float = 0.03
    exact_threshold: float = 100.0
    langevin_threshold: float = 1e7
    dt_max: float = 0.25
    continuous_rtol: float = 0.05
    max_steps: int = 10_000_000
    agent: AgentOptions = field(default_factory=AgentOptions)
    report_days: list[float] = field(default_factory=lambda: [28.0, 90.0, 180.0, 365.0])
    relapse_blast_pct: float = 5.0

    def __post_init__(self) -> None:
        _integer("replicates", self.replicates, 1, 10_000_000)
        if self.seed is not None:
            _integer("seed", self.seed, 0)
        if self.method not in METHODS:
            raise _bad("method", self.method, "one of " + ", ".join(METHODS))
        _number("epsilon", self.epsilon, 0.0, 0.5)
        _number("exact_threshold", self.exact_threshold, 0.0, 1e9, lo_open=False)
        _number("langevin_threshold", self.langevin_threshold, 100.0, 1e15, lo_open=False)
        _number("dt_max", self.dt_max, 0.0, 30.0)
        _number("continuous_rtol", self.continuous_rtol, 0.0, 1.0)
        _integer("max_steps", self.max_steps, 1)
        if isinstance(self.agent, dict):
            self.agent = AgentOptions(**self.agent)
        if not isinstance(self.agent, AgentOptions):
            raise _bad("agent", self.agent, "an AgentOptions (mapping of its fields)")
        days = self.report_days
        if not isinstance(days, (list, tuple)) or not days:
            raise _bad("report_days", days, "a non-empty list of days")
        for i, d in enumerate(days):
            _number(f"report_days[{i}]", d, -math.inf)
        self.report_days = [float(d) for d in days]
        _number("relapse_blast_pct", self.relapse_blast_pct, 0.0, 100.0, lo_open=True)

    def threshold(self) -> float:
        """The exact/tau switch in cells implied by ``method`` (inf: all exact, 0: all tau)."""
        return {"hybrid": float(self.exact_threshold), "exact": math.inf,
                "tau": 0.0}[self.method]
