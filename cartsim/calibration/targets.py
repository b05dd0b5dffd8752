"""The published figures the model is calibrated to, one :class:`Target` each.

Every cohort figure of ``science/targets.md`` (the first table and the one added
2026-12) is a :class:`Target`: the trial it comes from, the experiment config that
replicates that trial as a virtual cohort (``conf/experiment/trial_*.yaml``), the
statistic of the endpoints Dataset it is compared with
(:mod:`cartsim.calibration.statistics`) and the likelihood kind that scores it
(:mod:`cartsim.calibration.likelihood`):

``binomial``
    ``k`` of ``n`` patients (a rate).
``lognormal``
    a median with its range over ``n`` patients (a level or a day).
``km``
    a Kaplan-Meier landmark with its published 95% interval.

Not targets: the Fludarabine-exposure association (Fabrizio 2022, an effect size);
the tisagenlecleucel curve (the ``stein2019`` model's, ``tests/models/test_stein2019.py``);
the NCT05290155 Cmax *range* and the P1236 "peak not correlated with dose" and
"CAR-T very low after month 1" (shapes, checked by the mechanism tests); the pooled
CD7-negative escape 13/15 (the sum of three targets below, which would count twice);
the axi-cel expander mixture and the cytokine elimination rates (priors of the model,
not cohort figures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["KINDS", "TARGETS", "Target", "km", "median", "rate", "trials"]

KINDS = ("binomial", "lognormal", "km")
MONTH = 365.25 / 12.0
"""Days per month (the endpoints' convention)."""


@dataclass(frozen=True)
class Target:
    """One published figure and how the model is compared with it.

    Attributes
    ----------
    name : what the figure is, as a paper's table row says it.
    trial : the trial it belongs to (leave-one-trial-out leaves out all its targets).
    experiment : ``conf/experiment/<experiment>.yaml``, the virtual replica simulated.
    statistic : key of :data:`cartsim.calibration.statistics.STATISTICS`.
    kind : ``binomial``, ``lognormal`` or ``km``.
    observed : the published figure: the rate ``k/n``, the median, or the survival fraction.
    n : patients behind the figure (the information: the likelihood's width shrinks with it).
    lo, hi : the published range (``lognormal``) or 95% interval (``km``); None for rates.
    k : events (``binomial``).
    day : day at which a statistic is read (KM landmark, relapse by day), or None.
    scale : ``km`` only: the scale on which the interval is taken as normal (``logit``,
        ``cloglog`` or ``linear``).
    median_known : ``lognormal`` only: False when the trial gave a range but no median
        (the centre of the range stands in, with the width of the range, not of a median).
    source : citation, and what was assumed to turn the publication into this target.
    """

    name: str
    trial: str
    experiment: str
    statistic: str
    kind: str
    observed: float
    n: int
    source: str
    lo: float | None = None
    hi: float | None = None
    k: int | None = None
    day: float | None = None
    scale: str = "logit"
    median_known: bool = True
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Target {self.name!r}: kind={self.kind!r} is not accepted; "
                             f"expected one of {', '.join(KINDS)}")
        if self.kind == "binomial" and (self.k is None or not 0 <= self.k <= self.n):
            raise ValueError(f"Target {self.name!r}: a binomial target needs 0 <= k <= n, "
                             f"got k={self.k}, n={self.n}")
        if self.kind != "binomial" and not (self.lo is not None and self.hi is not None
                                            and 0 < self.lo < self.hi):
            raise ValueError(f"Target {self.name!r}: a {self.kind} target needs "
                             f"0 < lo < hi, got lo={self.lo}, hi={self.hi}")

    @property
    def key(self) -> str:
        """Unique id: ``experiment/statistic[@day]`` (the column name in a design store)."""
        at = "" if self.day is None else f"@{self.day:g}"
        return f"{self.experiment}/{self.statistic}{at}"

    @property
    def observed_label(self) -> str:
        """The figure as published (``18/20 (90.0%)``, ``day 12 (10-21)``)."""
        return self.label or (f"{self.k}/{self.n} ({100 * self.observed:.1f}%)"
                              if self.kind == "binomial" else f"{self.observed:g}")


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 1000 else f"{x:g}"


def rate(name: str, trial: str, experiment: str, statistic: str, k: int, n: int, source: str,
         *, day: float | None = None) -> Target:
    """A ``k``/``n`` figure (binomial likelihood)."""
    return Target(name, trial, experiment, statistic, "binomial", k / n, n, source, k=k, day=day)


def median(name: str, trial: str, experiment: str, statistic: str, value: float | None,
           lo: float,
           hi: float, n: int, source: str, *, unit: str = "", known: bool = True) -> Target:
    """A median with its range over ``n`` patients (log-normal likelihood).

    ``value=None``: no median was published; the geometric centre of the range stands in.
    """
    if value is None:
        value, known = math.sqrt(lo * hi), False
    label = f"{_num(value)} ({_num(lo)}-{_num(hi)}) {unit}".strip()
    return Target(name, trial, experiment, statistic, "lognormal", value, n, source, lo=lo,
                  hi=hi, median_known=known, label=label if known else f"{lo:g}-{hi:g} {unit}")


def km(name: str, trial: str, experiment: str, statistic: str, month: float, value: float,
       n: int, source: str, *, ci: tuple[float, float] | None = None,
       scale: str = "logit") -> Target:
    """A Kaplan-Meier landmark at ``month`` (normal likelihood on ``scale``).

    Without a published interval, the binomial-equivalent one of ``n`` patients all
    followed to the landmark stands in: ``se = sqrt(S (1 - S) / n)`` on the linear scale
    (Greenwood's variance without censoring), mapped to the interval's bounds.
    """
    if ci is None:
        half = 1.959964 * math.sqrt(value * (1.0 - value) / n)
        ci = (max(value - half, 1e-3), min(value + half, 1 - 1e-3))
        scale, label = "linear", f"{100 * value:.1f}% (no CI)"
    else:
        label = f"{100 * value:.1f}% ({100 * ci[0]:.1f}-{100 * ci[1]:.1f})"
    return Target(name, trial, experiment, statistic, "km", value, n, source, lo=ci[0],
                  hi=ci[1], day=round(month * MONTH), scale=scale, label=label)


NCT, PAN, LU = "trial_nct05290155", "trial_pan2021", "trial_lu2022"
AML, HU, GC, GC5, TCL, CCR = ("trial_cd7_aml", "trial_hu2024", "trial_gc027",
                              "trial_gc027_first5", "trial_p1236", "trial_ccr2023")
_NCT = "NCT05290155 phase I abstract (n=14)"
_PAN = "Pan et al. 2021 J Clin Oncol 39:3340"
_TAN = "Tan et al. 2023 J Hematol Oncol 16"
_LU = "Lu et al. 2022 Blood 140:321"
_AML = "CD7 CAR-T in CD7+ R/R AML, phase I abstract (n=13)"
_HU = "Hu et al. 2024 N Engl J Med 390:1467"
_GC = "GC027, Leukemia 2023;37:2176"
_TCL = "CD7 CAR-T in T-cell lymphoma, EHA poster P1236"
_CCR = "Donor-derived CD7 CAR-T, Clin Cancer Res 2023;29:1484"

TARGETS: tuple[Target, ...] = (
    # --- NCT05290155: autologous, all with extramedullary disease --------------------
    median("peak CAR copies, median", NCT, NCT, "median_cmax_qpcr", 62390, 3176, 326483, 14,
           _NCT, unit="copies/ug"),
    median("time of peak (qPCR), median", NCT, NCT, "median_tmax_qpcr", 12, 10, 21, 14, _NCT,
           unit="day"),
    rate("expansion observed", NCT, NCT, "rate_expansion", 13, 14, _NCT),
    rate("marrow CR/CRi at day 28", NCT, NCT, "rate_response_d28", 14, 14, _NCT),
    rate("extramedullary ORR", NCT, NCT, "rate_em_orr", 11, 14, _NCT + " (78.5%)"),
    rate("extramedullary CR", NCT, NCT, "rate_em_cr", 9, 14, _NCT + " (64.2%)"),
    rate("CRS any grade", NCT, NCT, "rate_crs_any", 12, 14, _NCT + " (85.7%)"),
    rate("CRS grade >= 3", NCT, NCT, "rate_crs_g3", 1, 14, _NCT),
    rate("ICANS any grade", NCT, NCT, "rate_icans_any", 2, 14, _NCT + " (14.3%)"),
    # --- Pan 2021 / Tan 2023: donor-derived -------------------------------------------
    rate("CR/CRi at day 28", PAN, PAN, "rate_response_d28", 18, 20, _PAN),
    rate("CRS grade >= 3", PAN, PAN, "rate_crs_g3", 2, 20, _PAN + " (G3-4 10%)"),
    rate("CRS any grade", PAN, PAN, "rate_crs_any", 20, 20, _PAN + " (G1-2 90% + G3-4 10%)"),
    rate("neurotoxicity any grade", PAN, PAN, "rate_icans_any", 3, 20, _PAN + " (G1-2 15%)"),
    rate("grade 3-4 cytopenia", PAN, PAN, "rate_cytopenia_g34", 20, 20, _PAN + " (100%)"),
    rate("CAR-T detectable at month 6", PAN, PAN, "rate_car_m6", 5, 5,
         _PAN + " (5/5 assessed)"),
    rate("relapse (27 months)", PAN, PAN, "rate_relapse", 6, 20, _TAN),
    rate("CD7-negative share of relapses", PAN, PAN, "share_cd7neg_relapse", 4, 6, _TAN),
    median("time to relapse, median", PAN, PAN, "median_relapse_month", 6.0, 4.0, 10.9, 6,
           _TAN + " (6 relapses)", unit="months"),
    km("PFS at 24 months", PAN, PAN, "km_pfs", 24, 0.368, 20, _TAN, ci=(0.138, 0.598)),
    km("OS at 24 months", PAN, PAN, "km_os", 24, 0.423, 20, _TAN, ci=(0.188, 0.658)),
    km("PFS at the median PFS, 11.0 months", PAN, PAN, "km_pfs", 11.0, 0.5, 20,
       _TAN + "; the median read as S(11.0 months) = 50% (no CI given; same curve as the "
              "24-month landmark, so not independent of it)"),
    km("OS at the median OS, 18.3 months", PAN, PAN, "km_os", 18.3, 0.5, 20,
       _TAN + "; the median read as S(18.3 months) = 50% (as for PFS)"),
    # --- Lu 2022: NS7CAR -------------------------------------------------------------
    rate("MRD-negative marrow CR by day 28", LU, LU, "rate_mrdneg_d28", 19, 20, _LU),
    rate("extramedullary CR", LU, LU, "rate_em_cr", 5, 9, _LU),
    rate("CRS any grade", LU, LU, "rate_crs_any", 19, 20, _LU + " (<= G2 in 18, G3 in 1)"),
    rate("CRS grade >= 3", LU, LU, "rate_crs_g3", 1, 20, _LU),
    rate("ICANS any grade", LU, LU, "rate_icans_any", 2, 20, _LU + " (G1 in 2)"),
    # --- CD7+ AML phase I ------------------------------------------------------------
    rate("CR/CRi at day 28", AML, AML, "rate_response_d28", 11, 13, _AML + " (84.6%)"),
    rate("CAR-T expansion", AML, AML, "rate_expansion", 12, 13, _AML),
    rate("CRS any grade", AML, AML, "rate_crs_any", 12, 13, _AML + " (G1-2, 92.3%)"),
    rate("CRS grade >= 3", AML, AML, "rate_crs_g3", 0, 13, _AML + " (none)"),
    rate("neurotoxicity any grade", AML, AML, "rate_icans_any", 1, 13, _AML + " (G1-2)"),
    rate("grade 3-4 cytopenia", AML, AML, "rate_cytopenia_g34", 13, 13, _AML),
    rate("relapse by the median follow-up (4.7 months)", AML, AML, "rate_relapse", 7, 13,
         _AML + "; 7 relapses at a median follow-up of 4.7 months (1.0-43.7), counted by "
                "day 143", day=143.0),
    rate("CD7-negative share of relapses", AML, AML, "share_cd7neg_relapse", 7, 7, _AML),
    # --- Hu 2024: donor-derived, then haplo-HSCT ------------------------------------
    rate("CRi at day 28 (before HSCT)", HU, HU, "rate_response_d28", 10, 10, _HU),
    rate("grade 4 neutropenia", HU, HU, "rate_neutropenia_g4", 10, 10,
         _HU + " (grade 4 pancytopenia 10/10 until HSCT; read on ANC < 500/uL at any time: "
               "the endpoints do not time it against the HSCT)"),
    rate("relapse", HU, HU, "rate_relapse", 2, 10, _HU),
    rate("CD7-negative share of relapses", HU, HU, "share_cd7neg_relapse", 2, 2, _HU),
    km("OS at 12 months", HU, HU, "km_os", 12, 0.68, 10, _HU),
    km("DFS at 12 months", HU, HU, "km_pfs", 12, 0.54, 10,
       _HU + " (DFS read as PFS: every patient responded)"),
    # --- GC027: allogeneic off-the-shelf --------------------------------------------
    rate("CR within one month", GC, GC, "rate_response_m1", 11, 12, _GC),
    median("time of peak (qPCR), days 5-10", GC, GC, "median_tmax_qpcr", None, 5, 10, 12,
           _GC + "; 'peak expansion on days 5-10': no median given, the geometric centre "
                 "of the range stands in", unit="day"),
    rate("CAR undetectable (flow and qPCR) at 4 weeks, responders", GC, GC,
         "rate_car_undetectable_d28", 9, 11, _GC + " (9/11 responders)"),
    rate("CRS grade >= 3 at 0.6-1.5e7 cells/kg", GC, GC5, "rate_crs_g3", 5, 5,
         _GC + " (first five patients: G3 in 4, G4 in 1)"),
    # --- P1236: T-cell lymphoma -----------------------------------------------------
    median("peak CAR-T cells (flow), median", TCL, TCL, "median_cmax_flow", 79, 16, 490, 10,
           _TCL + " (7.94e7/L)", unit="cells/uL"),
    median("time of peak (flow), median", TCL, TCL, "median_tmax_flow", 14, 11, 29, 10, _TCL,
           unit="day"),
    rate("CRS any grade", TCL, TCL, "rate_crs_any", 9, 10, _TCL + " (90%)"),
    rate("CRS grade >= 3", TCL, TCL, "rate_crs_g3", 2, 10, _TCL + " (20%)"),
    # --- Clin Cancer Res 2023: fratricide timing --------------------------------------
    rate("CR at day 28", CCR, CCR, "rate_response_d28", 7, 7, _CCR),
    rate("CD7+ T cells cleared by day 11", CCR, CCR, "rate_cd7_cleared_d11", 7, 7,
         _CCR + " ('gone from blood by day 11', read as all 7)"),
    rate("death from infection", CCR, CCR, "rate_death_infection", 2, 7, _CCR),
)
"""Every cohort figure of ``science/targets.md``, old and new (see the module docstring for
what is left out and why)."""


def trials(targets=TARGETS) -> list[str]:
    """The trials of ``targets``, in order of first appearance."""
    return list(dict.fromkeys(t.trial for t in targets))
