"""Settings of the clinical endpoints: assay limits, response criteria, surrogate grades, deaths.

:class:`EndpointSettings` is a plain dataclass that doubles as a Hydra structured
config (``conf/endpoints/default.yaml`` holds the same defaults with the same
comments). Every number is a modelling choice with a unit and a source or an
"assumption: why"; values are checked in ``__post_init__``, which raises
:class:`~cartsim.scenario.ScenarioError` naming the dotted key (``endpoints.<field>``).

The CRS and ICANS thresholds and the death-model hazards are starting values,
meant to be recalibrated to trial incidences (``science/targets.md``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cartsim.scenario import _check, _range

MONTH_DAYS = 30.4375
"""Days per month (365.25 / 12), for "month 1/3/6" windows and assessments."""


def assessment_day(months: float) -> float:
    """Day of a month-``months`` assessment: ``round(months * 30.4375)`` (month 3 = day 91)."""
    return float(round(months * MONTH_DAYS))


def _thresholds(key: str, values: list[float]) -> None:
    """Four grade thresholds (grades 1..4): positive, finite and strictly increasing."""
    _check(isinstance(values, (list, tuple)) and len(values) == 4, key, values,
           "a list of 4 thresholds, for grades 1, 2, 3, 4")
    for i, v in enumerate(values):
        _range(f"{key}[{i}]", v, 0.0, None, lo_open=True)
    _check(all(b > a for a, b in zip(values, values[1:])), key, values,
           "strictly increasing thresholds")


@dataclass
class DeathModel:
    """Per-patient death hazard (1/day), integrated over the output grid from day 0.

    ``h(t) = h_leuk(t) + h_neut(t) + h_aplasia(t) + h_crs(t) + h_trm(t)``, with

    * leukemia: ``h_leuk = leukemia_hazard_max_per_day * x^n / (1 + x^n)`` from
      ``leukemia_onset_day`` on (0 before),
      ``x = f / leukemia_f50 + V / leukemia_em_v50_cm3`` (``f`` marrow blast
      fraction, ``V`` extramedullary volume in cm3, ``n = leukemia_hill``);
    * neutropenic infection: ``neutropenia_hazard_per_day * min(1, d / neutropenia_ramp_days)``
      while ANC < the grade-4 threshold (``EndpointSettings.neutropenia_g4_per_ul``),
      ``d`` the days of grade-4 neutropenia so far (infection risk grows with the
      duration of neutropenia: Bodey et al. 1966 Ann Intern Med 64:328);
    * fatal CRS: ``crs_hazard_per_day`` while IL-6 is at or above the grade-4 surrogate
      threshold (``EndpointSettings.crs_il6_thresholds_pg_ml[3]``);
    * infection during T-cell aplasia: ``aplasia_hazard_per_day`` while normal CD7+
      T cells are below ``EndpointSettings.aplasia_cd7pos_per_ul``;
    * transplant-related mortality after ``hsct_day`` (when the Dataset has it):
      ``h_trm = h0 exp(-(t - hsct_day) / trm_tau_days)`` with ``h0`` set so that the
      one-year probability of transplant-related death alone is ``trm_1y``.

    Attributes
    ----------
    leukemia_hazard_max_per_day : 1/day; assumption: 0.01/day, so a marrow kept at
        40-80% blasts (untreated or refractory r/r T-ALL) gives a median survival of
        2.5-3 months, below the 24-week median after relapse with salvage therapy
        (Fielding et al. 2007 Blood 109:944).
    leukemia_f50 : -, marrow blast fraction at half the maximal hazard; assumption:
        0.25, so the hazard is small in morphological remission (< 0.5% of maximal at 5%).
    leukemia_hill : -, steepness of the burden-hazard curve; assumption: 2 (smooth rise).
    leukemia_em_v50_cm3 : cm3, extramedullary volume adding as much relative burden as
        ``leukemia_f50`` of marrow; assumption: 250 cm3 (a ~7.8 cm bulky mediastinal mass,
        where airway/vessel compression threatens life).
    neutropenia_hazard_per_day : 1/day while ANC < 500/uL; assumption (calibrated
        2026-12-07, experiments/calibration_results/best.yaml; prior range 3e-4 to 1e-2):
        4.04e-3/day, ~11% infection deaths per month of grade-4 neutropenia.
    aplasia_hazard_per_day : 1/day while CD7+ T cells are aplastic; assumption (calibrated
        2026-12-07, experiments/calibration_results/best.yaml; prior range 1e-4 to 3e-3):
        1.02e-4/day, ~7% over two years of lasting aplasia, with the 24-month PFS 36.8% and
        OS 42.3% of Tan 2023 among the targets (infection deaths after CD7 CAR-T: Pan et al.
        2021 J Clin Oncol 39:3340; Tan et al. 2023 J Hematol Oncol 16).
    leukemia_onset_day : day, first day the leukemia hazard acts; assumption: 14, deaths
        from leukemia need weeks of refractory or progressing disease (none of the CD7
        CAR-T trials in science/targets.md reports a leukemic death in the first two
        weeks), so early deaths come from CRS or infection, not from the baseline burden.
    neutropenia_ramp_days : day, days of grade-4 neutropenia after which the infection
        hazard is full; assumption: 7 (the risk of infection rises with the duration of
        profound neutropenia: Bodey et al. 1966 Ann Intern Med 64:328).
    crs_hazard_per_day : 1/day while IL-6 is in the grade-4 surrogate range; assumption:
        0.2/day, so about a third of patients with several days of grade-4 CRS die of it
        (Hay et al. 2017 Blood 130:2295: grade 4 3.8%, grade 5 3.8% of 133).
    trm_1y : -, one-year transplant-related mortality of a consolidative allo-HSCT;
        assumption: 0.15, mid-range of the 10-20% commonly reported for adult ALL.
    trm_tau_days : day, decay time of the transplant hazard; assumption: 100 days,
        most transplant-related deaths occur in the first months (the day-100 convention).
    """

    leukemia_hazard_max_per_day: float = 0.01
    leukemia_f50: float = 0.25
    leukemia_hill: float = 2.0
    leukemia_em_v50_cm3: float = 250.0
    neutropenia_hazard_per_day: float = 0.00257567
    aplasia_hazard_per_day: float = 0.000168724
    leukemia_onset_day: float = 14.0
    neutropenia_ramp_days: float = 7.0
    crs_hazard_per_day: float = 0.2
    trm_1y: float = 0.15
    trm_tau_days: float = 100.0

    def __post_init__(self) -> None:
        for name in ("leukemia_hazard_max_per_day", "neutropenia_hazard_per_day",
                     "aplasia_hazard_per_day", "crs_hazard_per_day"):
            _range(f"endpoints.death.{name}", getattr(self, name), 0.0, 10.0)
        _range("endpoints.death.leukemia_onset_day", self.leukemia_onset_day, 0.0, None)
        _range("endpoints.death.neutropenia_ramp_days", self.neutropenia_ramp_days, 0.0,
               None)
        _range("endpoints.death.leukemia_f50", self.leukemia_f50, 0.0, 1.0, lo_open=True)
        _range("endpoints.death.leukemia_hill", self.leukemia_hill, 0.0, 20.0, lo_open=True)
        _range("endpoints.death.leukemia_em_v50_cm3", self.leukemia_em_v50_cm3, 0.0, None,
               lo_open=True)
        _range("endpoints.death.trm_1y", self.trm_1y, 0.0, 1.0, hi_open=True)
        _range("endpoints.death.trm_tau_days", self.trm_tau_days, 0.0, None, lo_open=True)


@dataclass
class EndpointSettings:
    """Assay limits, response criteria, surrogate-grade thresholds and the death model.

    Attributes
    ----------
    lloq_copies_per_ug : copies/ug gDNA, qPCR lower limit of quantification: 50
        (tisagenlecleucel transgene assay, Mueller et al. 2017 Blood 130:2317).
    lloq_flow_cells_per_ul : cells/uL, flow lower limit of quantification of CAR-T cells;
        assumption: 1 cell/uL, the usual order of CAR-T flow panels.
    expansion_threshold_copies_per_ug : copies/ug; "expansion observed" when the qPCR peak
        reaches it; assumption: 1000, 20x the LLOQ and ~30x the level the infused dose
        alone gives on day 0, below the lowest peak of expanders (3,176) in NCT05290155.
    remission_blast_pct : %, morphological remission: marrow blasts < 5% (standard
        ALL criterion, e.g. NCCN ALL guidelines).
    mrd_flow : -, flow-cytometry MRD negativity: blast fraction < 1e-4 (Berry et al.
        2017 JAMA Oncol 3:e170580).
    mrd_molecular : -, molecular (Ig/TCR qPCR, NGS) MRD negativity: < 1e-5 (van der Velden
        et al. 2007 Leukemia 21:604).
    anc_recovery_per_ul : cells/uL, ANC for CR with count recovery (else CRi) and for
        neutrophil recovery: 1000 (NCCN ALL response criteria).
    anc_recovery_sustain_days : day, ANC must stay at/above ``anc_recovery_per_ul`` this
        long to count as recovered; assumption: 3 days, as in the "3 consecutive days" of
        the CIBMTR neutrophil-engraftment definition.
    neutropenia_g3_per_ul : cells/uL, grade >= 3 neutropenia: ANC < 1000 (CTCAE v5.0).
    neutropenia_g4_per_ul : cells/uL, grade 4 neutropenia: ANC < 500 (CTCAE v5.0).
    aplasia_cd7pos_per_ul : cells/uL, CD7+ T-cell aplasia below it; assumption: 50, a
        profound T-cell lymphopenia, well below the CD4 200/uL opportunistic-infection
        threshold known from HIV.
    cd7_clearance_per_ul : cells/uL, peripheral CD7+ normal T cells "cleared" below it;
        assumption: 1, the order of a flow-cytometry detection limit.
    cd7neg_relapse_pct : %, a relapse is CD7-negative when more than this share of blasts
        is CD7-negative; assumption: 50 (majority phenotype).
    progression_blast_increase : -, progressive disease in a non-responder: marrow blasts
        rise by at least this fraction above their nadir since day 0 (>= 25% increase,
        NCCN ALL response criteria).
    response_window_day : day, best response, MRD and extramedullary response are taken
        over days 0..this; assumption: 91 (month 3), the CD7 CAR-T trials report best
        response within 3 months.
    em_cr_volume_cm3 : cm3, extramedullary CR: residual mass below the volume of a sphere
        of 1.5 cm diameter, pi/6 * 1.5^3 (Lugano CR: lesions <= 1.5 cm; Cheson et al. 2014
        J Clin Oncol 32:3059).
    em_pr_volume_ratio : -, extramedullary PR: volume <= this fraction of baseline; SPD
        decrease >= 50% (Cheson 2014) with V ~ SPD^1.5 for a sphere: 0.5^1.5.
    em_pd_volume_ratio : -, extramedullary PD: volume >= this multiple of the nadir; SPD
        increase >= 50% from nadir (Cheson 2014): 1.5^1.5.
    crs_il6_thresholds_pg_ml : pg/mL, SURROGATE CRS grade k = number of thresholds the
        post-infusion IL-6 peak reaches (grades 1..4). Assumption: grade 1 at 20 (4x the
        healthy 5 pg/mL, the fever range; set by hand so that any-grade CRS reaches the
        86-100% of the CD7 CAR-T trials, 35 gave 75-84%), grade 3 from 1000 (severe CRS
        has peak IL-6 an order of magnitude above mild CRS: Teachey et al. 2016 Cancer
        Discov 6:664; Hay et al. 2017 Blood 130:2295).
    icans_il6_thresholds_pg_ml, icans_ifng_thresholds_pg_ml : pg/mL, SURROGATE ICANS grade
        k = the lower of the grades the IL-6 and the IFN-gamma peaks reach on these
        thresholds, and 0 without CRS. Assumption: ICANS follows severe CRS and high
        expansion, with higher IL-6 and IFN-gamma (Santomasso et al. 2018 Cancer Discov
        8:958; Gust et al. 2017 Cancer Discov 7:1404); the IFN-gamma grade-1 threshold
        800 pg/mL was set by hand so that any-grade ICANS falls near the 10-15% of
        NCT05290155, Pan 2021 and Lu 2022 (500 gave 17-34%).
    death : the death model (:class:`DeathModel`).
    """

    lloq_copies_per_ug: float = 50.0
    lloq_flow_cells_per_ul: float = 1.0
    expansion_threshold_copies_per_ug: float = 1000.0
    remission_blast_pct: float = 5.0
    mrd_flow: float = 1e-4
    mrd_molecular: float = 1e-5
    anc_recovery_per_ul: float = 1000.0
    anc_recovery_sustain_days: float = 3.0
    neutropenia_g3_per_ul: float = 1000.0
    neutropenia_g4_per_ul: float = 500.0
    aplasia_cd7pos_per_ul: float = 50.0
    cd7_clearance_per_ul: float = 1.0
    cd7neg_relapse_pct: float = 50.0
    progression_blast_increase: float = 0.25
    response_window_day: float = 91.0
    em_cr_volume_cm3: float = 1.7671458676442584
    em_pr_volume_ratio: float = 0.3535533905932738
    em_pd_volume_ratio: float = 1.8371173070873836
    crs_il6_thresholds_pg_ml: list[float] = field(
        default_factory=lambda: [20.0, 250.0, 1000.0, 4000.0])
    icans_il6_thresholds_pg_ml: list[float] = field(
        default_factory=lambda: [250.0, 1000.0, 4000.0, 10000.0])
    icans_ifng_thresholds_pg_ml: list[float] = field(
        default_factory=lambda: [800.0, 2000.0, 5000.0, 10000.0])
    death: DeathModel = field(default_factory=DeathModel)

    def __post_init__(self) -> None:
        positive = ("lloq_copies_per_ug", "lloq_flow_cells_per_ul",
                    "expansion_threshold_copies_per_ug", "anc_recovery_per_ul",
                    "neutropenia_g3_per_ul", "neutropenia_g4_per_ul", "aplasia_cd7pos_per_ul",
                    "cd7_clearance_per_ul", "em_cr_volume_cm3", "response_window_day")
        for name in positive:
            _range(f"endpoints.{name}", getattr(self, name), 0.0, None, lo_open=True)
        _range("endpoints.remission_blast_pct", self.remission_blast_pct, 0.0, 100.0,
               lo_open=True)
        _range("endpoints.cd7neg_relapse_pct", self.cd7neg_relapse_pct, 0.0, 100.0)
        for name in ("mrd_flow", "mrd_molecular"):
            _range(f"endpoints.{name}", getattr(self, name), 0.0, 1.0, lo_open=True)
        _range("endpoints.anc_recovery_sustain_days", self.anc_recovery_sustain_days, 0.0)
        _range("endpoints.progression_blast_increase", self.progression_blast_increase, 0.0,
               None, lo_open=True)
        _range("endpoints.em_pr_volume_ratio", self.em_pr_volume_ratio, 0.0, 1.0,
               lo_open=True, hi_open=True)
        _range("endpoints.em_pd_volume_ratio", self.em_pd_volume_ratio, 1.0, None,
               lo_open=True)
        _check(self.neutropenia_g4_per_ul < self.neutropenia_g3_per_ul,
               "endpoints.neutropenia_g4_per_ul", self.neutropenia_g4_per_ul,
               f"a count below endpoints.neutropenia_g3_per_ul ({self.neutropenia_g3_per_ul})")
        for name in ("crs_il6_thresholds_pg_ml", "icans_il6_thresholds_pg_ml",
                     "icans_ifng_thresholds_pg_ml"):
            _thresholds(f"endpoints.{name}", list(getattr(self, name)))
        if isinstance(self.death, Mapping):  # a plain dict from YAML or a notebook
            self.death = _build(DeathModel, self.death, "endpoints.death")
        _check(isinstance(self.death, DeathModel), "endpoints.death", self.death,
               "a DeathModel or a mapping of its fields")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> EndpointSettings:
        """Build settings from a (nested) mapping, e.g. ``yaml.safe_load(ds.attrs["settings"])``.

        Raises
        ------
        ScenarioError
            For a key that is not a field (naming it and the accepted keys) or a bad value.
        """
        return _build(cls, values, "endpoints")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a nested dict of plain Python values (for YAML)."""
        return dataclasses.asdict(self)


def _build(cls: type, values: Mapping[str, Any], prefix: str):
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        _check(key in names, f"{prefix}.{key}", values[key],
               f"a known key; accepted keys in {prefix} are {', '.join(names)}")
    return cls(**dict(values))
