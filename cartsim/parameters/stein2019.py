"""Parameters of the Stein et al. 2019 multiphasic CAR-T cellular-kinetics model.

Typical values, inter-individual variances and residual error of the
population model fitted to 90 paediatric and young-adult r/r B-ALL patients
treated with tisagenlecleucel (ELIANA, ENSIGN):

    Stein AM, Grupp SA, Levine JE, et al. Tisagenlecleucel model-based cellular
    kinetic analysis of chimeric antigen receptor-T cells. CPT Pharmacometrics
    Syst Pharmacol 2019; 8(5):285-295. doi:10.1002/psp4.12388

The order of ``STEIN2019`` is the layout of the first slots of the kernel
parameter vector (see ``cartsim.models.stein2019_kernel``).
"""

from __future__ import annotations

from cartsim.parameters.base import Parameter, ParameterSet

SOURCE = "Stein et al. 2019 CPT:PSP 8:285, Table 1"
"""Citation of the parameter estimates (population typical values, final model)."""

STEIN2019 = ParameterSet(
    [
        Parameter("foldx", 3900.0, "-", 1.0, 1e8, SOURCE,
                  "fold expansion of transgene level from infusion to the peak, Cmax/E(0)"),
        Parameter("Tmax", 9.3, "day", 0.5, 100.0, SOURCE,
                  "time from infusion to the peak transgene level"),
        Parameter("Cmax", 24000.0, "copies/ug", 1.0, 1e7, SOURCE,
                  "peak transgene level (qPCR, copies per ug genomic DNA)"),
        Parameter("alpha", 0.16, "1/day", 1e-3, 10.0, SOURCE,
                  "rate constant of the initial (effector) contraction after Tmax"),
        Parameter("FB", 0.0079, "-", 0.0, 1.0, SOURCE,
                  "fraction of the peak level that enters the slowly declining memory pool"),
        Parameter("beta", 0.0032, "1/day", 0.0, 1.0, SOURCE,
                  "rate constant of the terminal (memory) decline; must be < alpha"),
        Parameter("Ftoci", 1.2, "-", 0.1, 10.0, SOURCE,
                  "multiplier of the expansion rate rho when tocilizumab is given before Tmax"),
        Parameter("Fster", 1.0, "-", 0.1, 10.0, SOURCE,
                  "multiplier of the expansion rate rho when steroids are given before Tmax"),
    ],
    name="stein2019",
)
"""Typical-value parameter set of the Stein 2019 model (kernel order)."""

STEIN2019_OMEGA2: dict[str, float] = {
    "foldx": 2.4,
    "Tmax": 0.38,
    "Cmax": 0.65,
    "alpha": 0.91,
    "FB": 0.80,
    "beta": 0.86,
}
"""Inter-individual variances omega^2 of ln(parameter) (log-normal IIV), Stein 2019 Table 1.

An individual value is ``theta_i = theta * exp(eta_i)``, ``eta_i ~ N(0, omega^2)``.
Ftoci and Fster carry no IIV. For later cohort sampling and fitting.
"""

STEIN2019_RESIDUAL_SD: float = 0.56
"""Residual error: constant (additive) error on the natural-log scale of copies/ug,
i.e. ``ln(obs) = ln(C(t)) + eps``, ``eps ~ N(0, 0.56^2)`` (Stein 2019 Table 1)."""

STEIN2019_IIV_SOURCE = SOURCE
"""Citation of ``STEIN2019_OMEGA2`` and ``STEIN2019_RESIDUAL_SD``."""

__all__ = [
    "SOURCE",
    "STEIN2019",
    "STEIN2019_IIV_SOURCE",
    "STEIN2019_OMEGA2",
    "STEIN2019_RESIDUAL_SD",
]
