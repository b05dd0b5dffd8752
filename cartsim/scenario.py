"""Plain, typed description of one simulation scenario.

These dataclasses are the single schema of a run. They serve twice:

* as Hydra *structured configs* (``cartsim.config`` registers them in the
  ConfigStore), so a typo or a wrong type in a YAML file or a command-line
  override is rejected when the config is composed;
* as ordinary Python objects a notebook user builds by keyword, e.g.
  ``Scenario(regimen=Regimen(car_dose_per_kg=5e5))``, with no Hydra involved.

Every field carries its unit in its name or its comment. Value checks (ranges,
ordering, finiteness) live in ``__post_init__`` so that both paths are
validated identically; the error names the field, the value and what is
accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


class ScenarioError(ValueError):
    """A scenario field has a value that cartsim does not accept."""


def _check(cond: bool, key: str, value: Any, accepted: str) -> None:
    if not cond:
        raise ScenarioError(f"{key}={value!r} is not accepted: expected {accepted}")


def _finite(key: str, value: Any) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    _check(ok, key, value, "a finite number")


def _range(key: str, value: Any, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False, hi_open: bool = False) -> None:
    _finite(key, value)
    if lo is not None:
        bad = value <= lo if lo_open else value < lo
        _check(not bad, key, value, f"a number {'>' if lo_open else '>='} {lo}")
    if hi is not None:
        bad = value >= hi if hi_open else value > hi
        _check(not bad, key, value, f"a number {'<' if hi_open else '<='} {hi}")


@dataclass
class ModelConfig:
    """Which model to run and which of its parameters to override.

    ``params`` maps a parameter name of the model's parameter set to a new
    value in that parameter's unit (see ``cartsim.models.get_model(name).parameters``).
    Unknown names and values outside the parameter's bounds are rejected when a config is
    converted (``cartsim.config.to_scenario``, ``load_config``: a ``ScenarioError``), and
    when a scenario built by keyword is simulated (``cartsim.parameters.base.ParameterError``).
    """

    name: str = "cd7"
    params: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.name in ("cd7", "stein2019"), "model.name", self.name, "one of cd7, stein2019")
        for k, v in self.params.items():
            _finite(f"model.params.{k}", v)


@dataclass
class Product:
    """A CD7 CAR-T product.

    Attributes
    ----------
    name, label : identifiers (``label`` is free text for reports).
    residual_cd7 : surface CD7 left on CAR-T cells relative to a normal CD7+
        T cell, in [0, 1] (1 = unedited, 0 = complete knock-out). Sets
        self-stimulation and fratricide of CAR-T cells.
    donor_derived : True for a healthy-donor product (more proliferative, no
        blast contamination), False for autologous.
    memory_fraction, exhausted_fraction : phenotype of the infused CAR+ cells
        (fractions of the dose entering the memory and exhausted pools; the rest
        are effectors).
    vcn : CAR vector copies per CAR+ cell (copies/cell), for qPCR.
    allogeneic : True for an off-the-shelf product from an HLA-mismatched third-party
        donor (TCR knocked out, so no graft-versus-host disease): the host's recovering
        T cells reject it (``k_reject`` of the model), so it persists only while host
        T cells stay depleted. False for autologous and for donor-derived products from
        the patient's own transplant donor (tolerated).
    """

    name: str = "nanobody"
    label: str = "anti-CD7 VHH nanobody CAR, CD7 retained in ER/Golgi (PEBL-like), autologous"
    residual_cd7: float = 0.05
    donor_derived: bool = False
    memory_fraction: float = 0.3
    exhausted_fraction: float = 0.05
    vcn: float = 1.0
    allogeneic: bool = False

    def __post_init__(self) -> None:
        _range("product.residual_cd7", self.residual_cd7, 0.0, 1.0)
        _range("product.memory_fraction", self.memory_fraction, 0.0, 1.0)
        _range("product.exhausted_fraction", self.exhausted_fraction, 0.0, 1.0)
        _check(self.memory_fraction + self.exhausted_fraction <= 1.0,
               "product.memory_fraction + product.exhausted_fraction",
               self.memory_fraction + self.exhausted_fraction, "a sum <= 1")
        _range("product.vcn", self.vcn, 0.0, 20.0, lo_open=True)


@dataclass
class Disease:
    """Disease type: blast kinetics and antigen.

    Attributes
    ----------
    name : ``tall``, ``tlbl`` or ``cd7_aml`` (or a user preset).
    blast_growth_per_day : net proliferation rate of blasts at low burden (1/day).
    cd7_density : CD7 antigen density on blasts relative to T-ALL blasts (-).
    em_volume_cm3 : extramedullary (mediastinal/nodal) mass volume (cm3); 0 = none.
    em_access : CAR-T access to the extramedullary mass relative to marrow (-, [0, 1]).
    """

    name: str = "tall"
    label: str = "T-cell acute lymphoblastic leukemia"
    blast_growth_per_day: float = 0.0605504
    cd7_density: float = 1.0
    em_volume_cm3: float = 0.0
    em_access: float = 0.479325

    def __post_init__(self) -> None:
        _range("disease.blast_growth_per_day", self.blast_growth_per_day, 0.0, 2.0)
        _range("disease.cd7_density", self.cd7_density, 0.0, 10.0)
        _range("disease.em_volume_cm3", self.em_volume_cm3, 0.0, 5000.0)
        _range("disease.em_access", self.em_access, 0.0, 1.0)


@dataclass
class Patient:
    """One patient's covariates.

    Attributes
    ----------
    weight_kg : body weight (kg).
    height_cm : height (cm); body surface area by Mosteller.
    crcl_ml_min : creatinine clearance (mL/min), for fludarabine clearance.
    marrow_blast_pct : marrow blasts at lymphodepletion (% of nucleated marrow cells).
    cd7neg_blast_fraction : CD7-negative fraction of blasts at baseline (-).
    lymphocytes_per_ul : absolute lymphocyte count before lymphodepletion (cells/uL).
    anc_per_ul : absolute neutrophil count before lymphodepletion (cells/uL).
    """

    weight_kg: float = 70.0
    height_cm: float = 170.0
    crcl_ml_min: float = 96.0
    marrow_blast_pct: float = 40.0
    cd7neg_blast_fraction: float = 1e-6
    lymphocytes_per_ul: float = 800.0
    anc_per_ul: float = 2500.0

    def __post_init__(self) -> None:
        _range("patient.weight_kg", self.weight_kg, 2.0, 300.0)
        _range("patient.height_cm", self.height_cm, 40.0, 250.0)
        _range("patient.crcl_ml_min", self.crcl_ml_min, 0.0, 300.0, lo_open=True)
        _range("patient.marrow_blast_pct", self.marrow_blast_pct, 0.0, 100.0, hi_open=True)
        _range("patient.cd7neg_blast_fraction", self.cd7neg_blast_fraction, 0.0, 1.0)
        _range("patient.lymphocytes_per_ul", self.lymphocytes_per_ul, 0.0, 1e6, lo_open=True)
        _range("patient.anc_per_ul", self.anc_per_ul, 0.0, 1e6, lo_open=True)

    @property
    def bsa_m2(self) -> float:
        """Body surface area (m2), Mosteller: sqrt(height_cm * weight_kg / 3600)."""
        return math.sqrt(self.height_cm * self.weight_kg / 3600.0)


HSCT_CRITERIA = ("mrd_negative_cr", "cr", "all")
"""Who receives a consolidative HSCT on ``Regimen.hsct_day``."""


@dataclass
class Regimen:
    """Lymphodepletion, CAR-T dosing and interventions. Days are relative to CAR-T day 0.

    Attributes
    ----------
    flu_mg_m2 : fludarabine phosphate per day (mg/m2/day); 0 = none.
    cy_mg_m2 : cyclophosphamide per day (mg/m2/day); 0 = none.
    ld_days : days of lymphodepletion (day), strictly increasing, < first CAR-T day.
    flu_infusion_h, cy_infusion_h : infusion durations (h).
    flu_renal_adjust : reduce the fludarabine dose by 25% for CrCl 45-60 and 40% for 30-45 mL/min.
    car_dose_per_kg : total CAR+ cells per kg (cells/kg).
    car_days : infusion day(s) of CAR-T (day), strictly increasing (split dosing).
    car_fractions : fraction of the total dose given on each of ``car_days`` (sum 1).
    toci_il6_threshold : give tocilizumab when IL-6 first exceeds this (pg/mL); null = never.
    toci_days : scheduled tocilizumab days (day).
    toci_mg_kg : tocilizumab dose (mg/kg).
    steroid_il6_threshold : give dexamethasone when IL-6 first exceeds this (pg/mL); null = never.
    steroid_days : scheduled dexamethasone days (day).
    steroid_mg : dexamethasone dose (mg).
    reinfusion_days : days of CAR-T re-infusion (day), after the first infusion; no repeat
        lymphodepletion. Each gives ``reinfusion_dose_per_kg`` of the same product.
    reinfusion_dose_per_kg : CAR+ cells per kg per re-infusion (cells/kg).
    hsct_day : day of a consolidative allogeneic HSCT (day); null = none. Given only to
        patients who meet ``hsct_criterion`` on that day (decided on the simulated marrow).
    hsct_criterion : ``mrd_negative_cr`` (marrow blasts < 1e-4, flow-MRD negative),
        ``cr`` (marrow blasts < 5%) or ``all``.
    hsct_conditioning : True: myeloablative conditioning before the graft (log-kill of
        blasts, CAR-T and recipient T cells ablated); False: a transplant without
        conditioning after CAR-T-induced aplasia, with the CAR-T cells from the same
        donor (Hu et al. 2024 N Engl J Med 390:1467): nothing is killed, the graft's T
        cells are added. Either way graft-versus-leukemia acts from ``hsct_day`` on.
    """

    flu_mg_m2: float = 30.0
    cy_mg_m2: float = 300.0
    ld_days: list[float] = field(default_factory=lambda: [-5.0, -4.0, -3.0])
    flu_infusion_h: float = 0.5
    cy_infusion_h: float = 1.0
    flu_renal_adjust: bool = False
    car_dose_per_kg: float = 1e6
    car_days: list[float] = field(default_factory=lambda: [0.0])
    car_fractions: list[float] = field(default_factory=lambda: [1.0])
    toci_il6_threshold: float | None = None
    toci_days: list[float] = field(default_factory=list)
    toci_mg_kg: float = 8.0
    steroid_il6_threshold: float | None = None
    steroid_days: list[float] = field(default_factory=list)
    steroid_mg: float = 10.0
    reinfusion_days: list[float] = field(default_factory=list)
    reinfusion_dose_per_kg: float = 1e6
    hsct_day: float | None = None
    hsct_criterion: str = "mrd_negative_cr"
    hsct_conditioning: bool = True

    def __post_init__(self) -> None:
        _range("regimen.flu_mg_m2", self.flu_mg_m2, 0.0, 200.0)
        _range("regimen.cy_mg_m2", self.cy_mg_m2, 0.0, 5000.0)
        _range("regimen.flu_infusion_h", self.flu_infusion_h, 0.0, 24.0, lo_open=True)
        _range("regimen.cy_infusion_h", self.cy_infusion_h, 0.0, 24.0, lo_open=True)
        _range("regimen.car_dose_per_kg", self.car_dose_per_kg, 0.0, 1e10)
        _range("regimen.toci_mg_kg", self.toci_mg_kg, 0.0, 20.0)
        _range("regimen.steroid_mg", self.steroid_mg, 0.0, 1000.0)
        _range("regimen.reinfusion_dose_per_kg", self.reinfusion_dose_per_kg, 0.0, 1e10)
        for name in ("ld_days", "car_days", "toci_days", "steroid_days", "reinfusion_days"):
            days = list(getattr(self, name))
            for i, d in enumerate(days):
                _finite(f"regimen.{name}[{i}]", d)
            _check(all(b > a for a, b in zip(days, days[1:])), f"regimen.{name}", days,
                   "strictly increasing days")
        _check(len(self.car_days) >= 1, "regimen.car_days", self.car_days, "at least one day")
        _check(len(self.car_fractions) == len(self.car_days), "regimen.car_fractions",
               self.car_fractions, f"one fraction per car_days entry ({len(self.car_days)})")
        for i, f in enumerate(self.car_fractions):
            _range(f"regimen.car_fractions[{i}]", f, 0.0, 1.0)
        _check(abs(sum(self.car_fractions) - 1.0) < 1e-9, "regimen.car_fractions",
               self.car_fractions, "fractions summing to 1")
        if self.ld_days:
            _check(self.ld_days[-1] < self.car_days[0], "regimen.ld_days", self.ld_days,
                   f"days before the first CAR-T day ({self.car_days[0]})")
        if self.reinfusion_days:
            _check(self.reinfusion_days[0] > self.car_days[0], "regimen.reinfusion_days",
                   self.reinfusion_days, f"days after the first CAR-T day ({self.car_days[0]})")
        _check(self.hsct_criterion in HSCT_CRITERIA, "regimen.hsct_criterion",
               self.hsct_criterion, "one of " + ", ".join(HSCT_CRITERIA))
        if self.hsct_day is not None:
            _range("regimen.hsct_day", self.hsct_day, self.car_days[0], None, lo_open=True)
        for name in ("toci_il6_threshold", "steroid_il6_threshold"):
            v = getattr(self, name)
            if v is not None:
                _range(f"regimen.{name}", v, 0.0, None, lo_open=True)


SOLVER_METHODS = ("rodas4", "dp5", "bdf", "dp5_bdf")
"""Names of the compiled ODE methods (``cartsim.solvers.api.METHODS``)."""


@dataclass
class SolverOptions:
    """Numerical settings.

    Attributes
    ----------
    method : ``auto`` (the model's default), ``rodas4`` (stiff, Rosenbrock),
        ``dp5`` (explicit Dormand-Prince 5(4)), ``bdf`` (stiff, variable-order
        BDF/NDF reusing the Jacobian and LU across steps) or ``dp5_bdf`` (DP5 that
        switches to BDF where a stiffness test finds the problem stiff).
    rtol : relative tolerance (-).
    atol_scale : multiplies the model's per-state absolute tolerances (-).
    max_steps : maximum accepted + rejected steps per patient.
    """

    method: str = "auto"
    rtol: float = 1e-6
    atol_scale: float = 1.0
    max_steps: int = 200_000

    def __post_init__(self) -> None:
        _check(self.method in ("auto", *SOLVER_METHODS), "solver.method", self.method,
               "one of auto, " + ", ".join(SOLVER_METHODS))
        _range("solver.rtol", self.rtol, 1e-14, 1e-1)
        _range("solver.atol_scale", self.atol_scale, 0.0, 1e6, lo_open=True)
        _check(isinstance(self.max_steps, int) and self.max_steps > 0, "solver.max_steps",
               self.max_steps, "a positive integer")


@dataclass
class OutputOptions:
    """Output time grid (days since CAR-T infusion).

    ``times``, when given, overrides the regular grid ``t_start, t_start+dt, ..., t_end``.
    """

    t_start: float = -5.0
    t_end: float = 365.0
    dt: float = 1.0
    times: list[float] | None = None

    def __post_init__(self) -> None:
        _finite("output.t_start", self.t_start)
        _finite("output.t_end", self.t_end)
        _check(self.t_end > self.t_start, "output.t_end", self.t_end,
               f"a day after output.t_start ({self.t_start})")
        _range("output.dt", self.dt, 0.0, None, lo_open=True)
        if self.times is not None:
            _check(len(self.times) > 0, "output.times", self.times, "a non-empty list")
            for i, d in enumerate(self.times):
                _finite(f"output.times[{i}]", d)
            _check(all(b > a for a, b in zip(self.times, self.times[1:])), "output.times",
                   self.times, "strictly increasing days")


SEED_MAX = 2**64 - 1
"""Largest run seed: seeds are unsigned 64-bit integers (``numpy.random.SeedSequence`` entropy,
stored in the output's attributes)."""

TRANSPLANT_MODELS = ("cd7",)
"""Models with a transplant (``regimen.hsct_day``) and CAR-T re-infusion (``reinfusion_days``);
``stein2019`` describes one infusion's kinetics only."""


@dataclass
class Scenario:
    """Everything one simulation needs. Build it by keyword or via ``cartsim.load_config``.

    Besides the checks of each part, the parts are checked together: no tocilizumab or
    dexamethasone day lies before :meth:`start_day`, no intervention (re-infusion,
    tocilizumab, dexamethasone, transplant) after :meth:`end_day`, each infusion is 0 or at
    least one CAR+ cell, the model supports the regimen (``stein2019`` has no transplant
    and no re-infusion), and ``seed`` is an integer in [0, 2**64 - 1].
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    product: Product = field(default_factory=Product)
    disease: Disease = field(default_factory=Disease)
    patient: Patient = field(default_factory=Patient)
    regimen: Regimen = field(default_factory=Regimen)
    solver: SolverOptions = field(default_factory=SolverOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    seed: int = 0

    def __post_init__(self) -> None:
        ok = isinstance(self.seed, int) and not isinstance(self.seed, bool)
        _check(ok and 0 <= self.seed <= SEED_MAX, "seed", self.seed,
               "an integer from 0 to 2**64 - 1")
        self._check_event_days()
        self._check_doses()
        reg = self.regimen
        if self.model.name not in TRANSPLANT_MODELS:
            _check(reg.hsct_day is None, "regimen.hsct_day", reg.hsct_day,
                   f"null with model.name={self.model.name!r} (it has no transplant; "
                   f"use model={TRANSPLANT_MODELS[0]})")
            _check(not reg.reinfusion_days, "regimen.reinfusion_days", reg.reinfusion_days,
                   f"[] with model.name={self.model.name!r} (it describes one infusion; "
                   f"use model={TRANSPLANT_MODELS[0]})")

    def start_day(self) -> float:
        """Day the simulation starts (day): the earliest of the first output time, the first
        lymphodepletion day and the first CAR-T day. The baseline covariates
        (``patient.marrow_blast_pct``, ...) hold on this day."""
        out, reg = self.output, self.regimen
        first_out = out.times[0] if out.times else out.t_start
        return float(min(first_out, *reg.ld_days[:1], reg.car_days[0]))

    def end_day(self) -> float:
        """Last simulated day (day): ``output.t_end``, or the last of ``output.times``."""
        out = self.output
        return float(out.times[-1] if out.times else out.t_end)

    def _check_event_days(self) -> None:
        """Events outside [start_day, end_day] are refused: one before the start would move
        the start (the disease would grow from its baseline for longer than configured),
        an intervention after the end would be ignored. CAR-T infusion days may lie after
        the end: a simulation can stop before the infusion (lymphodepletion alone)."""
        reg = self.regimen
        start, end = self.start_day(), self.end_day()
        first_out = "output.times[0]" if self.output.times else "output.t_start"
        last_out = "output.times[-1]" if self.output.times else "output.t_end"
        for name in ("toci_days", "steroid_days"):
            days = list(getattr(reg, name))
            _check(not days or days[0] >= start, f"regimen.{name}", days,
                   f"days >= {start:g}, the start of the simulation (the earliest of "
                   f"{first_out}, regimen.ld_days[0] and regimen.car_days[0]); set "
                   f"{first_out} earlier to start the simulation earlier")
        events = [(f"regimen.{name}", list(getattr(reg, name)))
                  for name in ("reinfusion_days", "toci_days", "steroid_days")]
        if reg.hsct_day is not None:
            events.append(("regimen.hsct_day", reg.hsct_day))
        for key, value in events:
            last = max(value) if isinstance(value, list) and value else value
            _check(value == [] or last <= end, key, value,
                   f"days <= {end:g}, the end of the simulation ({last_out}); an event "
                   f"after it would be ignored: set {last_out} later")

    def _check_doses(self) -> None:
        """An infusion of less than one CAR+ cell is refused (0 is no CAR-T): the ODE would
        expand a fraction of a cell into a response."""
        reg, weight = self.regimen, self.patient.weight_kg
        per_cell = f"at least one CAR+ cell per infusion (>= {1.0 / weight:.3g} cells/kg at " \
                   f"patient.weight_kg={weight!r})"
        for i, frac in enumerate(reg.car_fractions):
            cells = reg.car_dose_per_kg * frac * weight
            if 0.0 < cells < 1.0:
                total = reg.car_dose_per_kg * weight
                if total < 1.0:
                    _check(False, "regimen.car_dose_per_kg", reg.car_dose_per_kg,
                           f"0 (no CAR-T) or {per_cell}")
                _check(False, f"regimen.car_fractions[{i}]", frac,
                       f"0 or a fraction of at least one CAR+ cell (>= {1.0 / total:.3g} of "
                       f"{total:.3g} cells)")
        if reg.reinfusion_days:
            cells = reg.reinfusion_dose_per_kg * weight
            _check(not 0.0 < cells < 1.0, "regimen.reinfusion_dose_per_kg",
                   reg.reinfusion_dose_per_kg, f"0 or {per_cell}")
