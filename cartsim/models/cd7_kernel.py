r"""Compiled kernel of the ``cd7`` model: a reaction network for cells plus continuous terms.

The model is written once, as

* ``N_CELL`` cell species (whole-body counts) changed by ``N_REACTION``
  reactions with integer stoichiometry ``STOICH[r, i]`` and propensities
  ``a_r(x, c)`` (cells/day) computed by :func:`propensities`;
* continuous states ``c`` (drug amounts, cytokine concentrations, the
  homeostatic-cytokine level, macrophage activation, myeloid precursors),
  whose derivatives :func:`continuous_rhs` returns.

The ODE right-hand side :func:`rhs` combines both: for a cell species held
as :math:`y_i = \ln x_i`,

.. math:: \dot y_i = \frac{1}{x_i} \sum_r S_{ri}\, a_r(x, c),

so counts stay positive and carry uniform relative accuracy from 1 to 1e13
cells. A stochastic engine reuses ``STOICH``, :func:`propensities` and
:func:`continuous_rhs` unchanged.

Propensities (per-capita rate times the population; :math:`S_{ag}` is the
antigen saturation, :math:`\kappa` the per-target kill rate):

.. math::

    A_g &= d\,(B_7 + \varepsilon_L L) + T_7, \qquad
    S_{ag} = A_g / (K_{ag} + A_g) \\
    \kappa &= \frac{k_{kill} E_k}{K_{kill} + E_k + \theta\, \mathcal{T}}\,(1 - I_{ster}), \quad
    E_k = E + \sigma_X X, \quad \mathcal{T} = \phi(d)(B_7 + \varepsilon_L L) + T_7 \\
    \text{expansion } E \to 2E &: \rho E, \quad \rho = \frac{\rho_{max} f_{don} S_{ag}
    (1 + \eta_H (H - 1)) (1 - I_{ster})}{(1 + (E + M + X)/K_{niche})(1 + (G/G_{cap})^{n_G})} \\
    E \to M &: (k_{EM0} + k_{EM}(1 - S_{ag})) E, \quad M \to E: k_{ME} S_{ag} M, \quad
    E \to X: k_{EX} (S_{ag} + w_{self} r_{CD7}) E \\
    \text{deaths} &: \delta_E E,\ \delta_M M,\ \delta_X X,\
    \text{fratricide } r_{CD7}\kappa\,(E, M, X),\
    \text{rejection } k_{rej} a_{allo} P_a \frac{u}{u_{50} + u} (E, M, X), \
    u = \frac{T_7 + T_0}{\Lambda_0} \\
    \text{blast birth/death} &: r_B B_j,\ r_B B_j (B_7 + B_0)/K_B,\ g_{GVL} (B_j, L),
    \quad B_7 \to B_0: k_{sw} B_7 \\
    \text{killing} &: \kappa \phi(d) B_7,\ \varepsilon_L \kappa \phi(d) L,\ \kappa T_7,
    \quad \phi(d) = d (1 + d_{50}) / (d + d_{50}) \\
    \text{lymphodepletion} &: k_{LD}(C_f, C_c)\,(T_7, T_0, s_B B_j, s_B L, E, M, X) \\
    \text{normal T} &: r_T H\, T_j \text{ (homeostatic birth)},\ r_T T_j \text{ (death)}

with :math:`k_{LD} = k^{f}_{max} C_f/(EC^f_{50}+C_f) + k^{c}_{max} C_c/(EC^c_{50}+C_c)`.

Continuous states (days, mg, mg/L, pg/mL):

.. math::

    \dot F_1 &= R_f - (CL + Q_2 + Q_3) F_1/V_1 + Q_2 F_2/V_2 + Q_3 F_3/V_3, \quad
    \dot F_2 = Q_2 (F_1/V_1 - F_2/V_2), \quad \dot F_3 = Q_3 (F_1/V_1 - F_3/V_3) \\
    \dot{Cy} &= R_c - CL_c\, Cy / V_c, \quad \dot{AUC}_f = 24\, F_1 / V_1 \ \text{(mg h/L)} \\
    \dot H &= k_H \left(1 - H(\epsilon_H + (1-\epsilon_H) \Lambda/\Lambda_0)\right),
    \quad \Lambda = T_7 + T_0 + E + M + X \\
    \dot \gamma &= k_\gamma(\gamma_0 - \gamma) + s_\gamma a_E (1 - I_{ster}), \quad
    \dot \tau = k_\tau(\tau_0 - \tau) + s_\tau a_E (1 - I_{ster}), \quad a_E = S_{ag} E / 10^9 \\
    \dot A &= k_A (\Sigma - A), \quad \Sigma = \frac{\left(\frac{\gamma}{EC_\gamma}
        + \frac{\tau}{EC_\tau}\right)\left(1 + \frac{D}{EC_D}\right)
        \left(1 + w_6 \frac{IL6_s}{IL6_s + EC_6}\right)}{1 + IL10/K_{10}} \\
    \dot{IL6} &= k_6 (IL6_0 - (1 - f_{rec}\, o) IL6) + s_6 A (1 - I_{ster}), \quad
    o = C_{toci}/(C_{toci} + K_{toci}), \quad IL6_s = (1 - o) IL6 \\
    \dot{IL10} &= k_{10}(IL10_0 - IL10) + s_{10} A + s_{10E} a_E \\
    \dot C_{toci} &= -k_{toci} C_{toci}, \quad \dot{Dex} = -k_{dex} Dex, \quad
    I_{ster} = I^{max}_{ster} Dex / (Dex + EC_{dex}) \\
    \dot G &= \rho \quad \text{(cumulative proliferation of the CAR-T lineage, e-folds)} \\
    \dot P_a &= k_{prime}\, a_{allo} (1 - P_a) \frac{E + M + X}{C_{pres} + E + M + X}
    \quad \text{(host alloimmune priming, 0 to 1; rejection} \propto P_a) \\
    \dot P &= k_{tr} P (1 - E_{my}) (1/N)^{\gamma_N} - k_{tr} P, \quad \dot N = k_{tr}(P - N), \quad
    E_{my} = 1 - (1 - \tfrac{E^c C_c}{EC^{c}_{my} + C_c})(1 - \tfrac{E^f C_f}{EC^{f}_{my} + C_f})

where :math:`D` is the rate at which targets are killed (1e9 cells/day, DAMP release and
CAR-T/macrophage contact at the killing site); :math:`\gamma, \tau` are the excesses of
IFN-gamma and TNF-alpha over baseline. Macrophages need two signals: cytokines from
antigen-engaged CAR-T cells, amplified by contact and debris at the killing site
(CD40L contact and GM-CSF/IFN-gamma: Giavridis et al. 2018 Nat Med 24:731; DAMPs:
Santurio et al. 2025 PLoS Comput Biol). The product of the two grows roughly with the
square of the engaged CAR-T mass, so CRS severity rises steeply with the CAR-T peak and
the tumour burden, hence with dose (Hay 2017 Blood 130:2295; GC027 at 1e7/kg: CRS
grade >= 3 in 5/5). Saturating, additive stimuli had capped IL-6 near grade 3 and made
it independent of dose.

Why these terms (issue 13 of the project):

* residual CD7 on CAR-T cells does not count as antigen for expansion: it drives
  fratricide (:math:`r_{CD7}\kappa`) and tonic exhaustion (:math:`w_{self} r_{CD7}`), so
  CAR-T cells contract in every patient once blasts and CD7+ T cells are gone (no
  self-sustained plateau at the niche level, which no trial shows);
* :math:`G` counts the e-folds of proliferation of the infused lineage; expansion
  stops as :math:`G` approaches the product's proliferative capacity
  :math:`G_{cap}` (replicative exhaustion; Stein 2019 fold-expansion ~3,900 with wide
  IIV), so a small dose cannot expand without limit: dose changes the peak where
  capacity rather than antigen limits it, and a large dose reaches the peak sooner;
* allogeneic (HLA-mismatched, off-the-shelf) products are rejected by host T cells
  in proportion to their recovery after lymphodepletion, once a primary alloimmune
  response has been primed (:math:`P_a`, about a week) (GC027, Leukemia 2023;37:2176:
  peak on days 5-10, undetectable by week 4 in most).
  A re-infusion joins the lineage's division count :math:`G` (assumption: fresh cells
  are not tracked apart).
Every symbol is a named entry of :mod:`cartsim.parameters.cd7` (units and sources there),
or a patient/regimen-derived slot listed below.
"""

import numba as nb
import numpy as np

# --- states -------------------------------------------------------------------------------
STATE_NAMES = (
    "car_eff", "car_mem", "car_exh", "blast_cd7pos", "blast_cd7neg", "em_mass",
    "t_cd7pos", "t_cd7neg",
    "flu_central", "flu_periph1", "flu_periph2", "cy_central",
    "homeostatic_cytokine", "macrophage_activation", "il6", "il10", "ifng", "tnfa",
    "toci_conc", "dex_amount", "myeloid_precursor", "myeloid_blood", "flu_auc",
    "car_divisions", "allo_priming",
)
(S_E, S_M, S_X, S_B7, S_B0, S_L, S_T7, S_T0,
 S_F1, S_F2, S_F3, S_CY, S_H, S_A, S_IL6, S_IL10, S_IFNG, S_TNFA,
 S_TOCI, S_DEX, S_MP, S_MN, S_FAUC, S_G, S_AP) = range(len(STATE_NAMES))
N_STATE = len(STATE_NAMES)
N_CELL = 8  # states 0..7 are cell species (held as ln(cells))

# --- model parameters (order = cartsim.parameters.cd7 order) ------------------------------
PARAM_NAMES = (
    "rho_max", "car_niche", "k_ag", "eta_h", "w_self", "donor_fitness",
    "expansion_capacity", "capacity_hill", "k_reject", "k_prime", "allo_prime0", "reject_t_half",
    "k_em0", "k_em", "k_me", "k_ex", "delta_e", "delta_m", "delta_x",
    "k_kill", "k_kill_half", "theta_kill", "sigma_x", "d50_kill",
    "k_switch", "blast_capacity", "marrow_normal_cells", "em_growth_factor", "em_capacity",
    "r_t", "k_h", "eps_h",
    "kmax_flu", "ec50_flu", "kmax_cy", "ec50_cy", "ld_blast_sens",
    "k_ifng", "ifng0", "s_ifng", "k_tnfa", "tnfa0", "s_tnfa",
    "k_a", "ec_ifng", "ec_tnfa", "ec_damp", "w_il6", "ec_il6", "k_il10_inh",
    "k_il6", "il60", "s_il6", "f_rec_toci", "k_toci_kd",
    "k_il10", "il100", "s_il10", "s_il10e",
    "k_toci", "k_dex", "imax_ster", "ec50_dex",
    "mtt_myeloid", "gamma_myeloid", "emax_cy_my", "ec50_cy_my", "emax_flu_my", "ec50_flu_my",
    "emax_ifng_my", "ec50_ifng_my",
)
(P_RHO_MAX, P_CAR_NICHE, P_K_AG, P_ETA_H, P_W_SELF, P_DONOR_FIT,
 P_G_CAP, P_G_HILL, P_K_REJ, P_K_PRIME, P_AP0, P_REJ_HALF,
 P_K_EM0, P_K_EM, P_K_ME, P_K_EX, P_DELTA_E, P_DELTA_M, P_DELTA_X,
 P_K_KILL, P_K_KILL_HALF, P_THETA, P_SIGMA_X, P_D50,
 P_K_SW, P_KB, P_NMARROW, P_EM_GROWTH, P_EM_CAP,
 P_R_T, P_K_H, P_EPS_H,
 P_KMAX_FLU, P_EC50_FLU, P_KMAX_CY, P_EC50_CY, P_LD_BLAST,
 P_K_IFNG, P_IFNG0, P_S_IFNG, P_K_TNFA, P_TNFA0, P_S_TNFA,
 P_K_A, P_EC_IFNG, P_EC_TNFA, P_EC_DAMP, P_W_IL6, P_EC_IL6, P_K_IL10_INH,
 P_K_IL6, P_IL60, P_S_IL6, P_F_REC, P_K_TOCI_KD,
 P_K_IL10, P_IL100, P_S_IL10, P_S_IL10E,
 P_K_TOCI, P_K_DEX, P_IMAX_STER, P_EC50_DEX,
 P_MTT_MY, P_GAMMA_MY, P_EMAX_CY_MY, P_EC50_CY_MY, P_EMAX_FLU_MY, P_EC50_FLU_MY,
 P_EMAX_IFNG_MY, P_EC50_IFNG_MY,
 ) = range(len(PARAM_NAMES))
N_MODEL_PARAM = len(PARAM_NAMES)

# --- patient / product / regimen slots appended after the model parameters ---------------
SLOT_NAMES = (
    "flu_v1", "flu_v2", "flu_v3", "flu_cl", "flu_q2", "flu_q3",  # L, L/day
    "cy_v", "cy_cl",  # L, L/day
    "residual_cd7", "donor", "cd7_density", "em_access", "blast_growth", "em_present",
    "lymph0",  # cells: homeostatic reference (T + CAR at baseline)
    "allogeneic",  # 1: HLA-mismatched off-the-shelf product (host rejection), else 0
    "gvl",  # 1/day: graft-versus-leukemia death rate of blasts, set by an allo-HSCT event
    "rate_flu", "rate_cy",  # mg/day, set by infusion events
)
(D_V1, D_V2, D_V3, D_CL, D_Q2, D_Q3, D_CYV, D_CYCL,
 D_RESID, D_DONOR, D_DENS, D_EMACC, D_RB, D_EMPRES, D_LYMPH0, D_ALLO, D_GVL,
 D_RATE_FLU, D_RATE_CY) = range(N_MODEL_PARAM, N_MODEL_PARAM + len(SLOT_NAMES))
N_P = N_MODEL_PARAM + len(SLOT_NAMES)

# --- reactions (cell species only) --------------------------------------------------------
REACTION_NAMES = (
    "car_expansion", "car_eff_to_mem", "car_mem_to_eff", "car_eff_to_exh",
    "car_eff_death", "car_mem_death", "car_exh_death",
    "car_eff_fratricide", "car_mem_fratricide", "car_exh_fratricide",
    "car_eff_ld", "car_mem_ld", "car_exh_ld",
    "car_eff_rejected", "car_mem_rejected", "car_exh_rejected",
    "b7_birth", "b7_crowding_death", "b0_birth", "b0_crowding_death", "b7_to_b0_switch",
    "b7_killed", "b7_ld", "b0_ld", "b7_gvl", "b0_gvl",
    "em_birth", "em_crowding_death", "em_killed", "em_ld", "em_gvl",
    "t7_birth", "t7_death", "t7_killed", "t7_ld",
    "t0_birth", "t0_death", "t0_ld",
)
N_REACTION = len(REACTION_NAMES)


def _stoichiometry() -> np.ndarray:
    s = np.zeros((N_REACTION, N_CELL), dtype=np.int64)
    spec = {
        "car_expansion": {S_E: 1}, "car_eff_to_mem": {S_E: -1, S_M: 1},
        "car_mem_to_eff": {S_M: -1, S_E: 1}, "car_eff_to_exh": {S_E: -1, S_X: 1},
        "car_eff_death": {S_E: -1}, "car_mem_death": {S_M: -1}, "car_exh_death": {S_X: -1},
        "car_eff_fratricide": {S_E: -1}, "car_mem_fratricide": {S_M: -1},
        "car_exh_fratricide": {S_X: -1},
        "car_eff_ld": {S_E: -1}, "car_mem_ld": {S_M: -1}, "car_exh_ld": {S_X: -1},
        "car_eff_rejected": {S_E: -1}, "car_mem_rejected": {S_M: -1},
        "car_exh_rejected": {S_X: -1},
        "b7_birth": {S_B7: 1}, "b7_crowding_death": {S_B7: -1},
        "b0_birth": {S_B0: 1}, "b0_crowding_death": {S_B0: -1},
        "b7_to_b0_switch": {S_B7: -1, S_B0: 1},
        "b7_killed": {S_B7: -1}, "b7_ld": {S_B7: -1}, "b0_ld": {S_B0: -1},
        "b7_gvl": {S_B7: -1}, "b0_gvl": {S_B0: -1},
        "em_birth": {S_L: 1}, "em_crowding_death": {S_L: -1}, "em_killed": {S_L: -1},
        "em_ld": {S_L: -1}, "em_gvl": {S_L: -1},
        "t7_birth": {S_T7: 1}, "t7_death": {S_T7: -1}, "t7_killed": {S_T7: -1},
        "t7_ld": {S_T7: -1},
        "t0_birth": {S_T0: 1}, "t0_death": {S_T0: -1}, "t0_ld": {S_T0: -1},
    }
    for r, name in enumerate(REACTION_NAMES):
        for i, v in spec[name].items():
            s[r, i] = v
    return s


STOICH = _stoichiometry()


@nb.njit(cache=True, error_model="numpy", inline="always")
def _sat(x, k):
    return x / (k + x)


@nb.njit(cache=True, error_model="numpy")
def drivers(E, M, X, B7, L, T7, c, p):
    """Shared intermediate quantities of propensities and continuous terms.

    Returns the tuple (S_ag, kappa, k_LD, I_ster, C_flu, C_cy, phi, D): antigen
    saturation (-), per-target kill rate (1/day), lymphodepletion kill rate
    (1/day), steroid inhibition (-), F-ara-A and cyclophosphamide plasma
    concentrations (mg/L), kill-rate density factor (-) and target kill flux
    (1e9 cells/day). ``c`` holds the continuous states (index minus ``N_CELL``).
    """
    dens = p[D_DENS]
    em_acc = p[D_EMACC] * p[D_EMPRES]
    ag = dens * (B7 + em_acc * L) + T7  # CD7 on CAR-T cells is not a stimulus (see top)
    s_ag = _sat(ag, p[P_K_AG])
    dex = c[S_DEX - N_CELL]
    i_ster = p[P_IMAX_STER] * _sat(dex, p[P_EC50_DEX]) if dex > 0.0 else 0.0
    d50 = p[P_D50]
    phi = dens * (1.0 + d50) / (dens + d50)
    targets = phi * (B7 + em_acc * L) + T7
    ek = E + p[P_SIGMA_X] * X
    kappa = (p[P_K_KILL] * ek / (p[P_K_KILL_HALF] + ek + p[P_THETA] * targets)
             * (1.0 - i_ster))
    cf = c[S_F1 - N_CELL] / p[D_V1]
    cc = c[S_CY - N_CELL] / p[D_CYV]
    kld = p[P_KMAX_FLU] * _sat(cf, p[P_EC50_FLU]) + p[P_KMAX_CY] * _sat(cc, p[P_EC50_CY])
    return s_ag, kappa, kld, i_ster, cf, cc, phi, kappa * targets * 1e-9


@nb.njit(cache=True, error_model="numpy", inline="always")
def _capacity(G, p):
    """Remaining proliferative capacity ``1 / (1 + (G/G_cap)^n_G)`` (-) after ``G`` e-folds."""
    if G <= 0.0:
        return 1.0
    return 1.0 / (1.0 + (G / p[P_G_CAP]) ** p[P_G_HILL])


@nb.njit(cache=True, error_model="numpy")
def _growth_terms(car, c, p, s_ag, i_ster):
    """(CAR-T expansion per capita, blast growth r_B, EM growth r_L, homeostatic level H).

    ``car`` is all CAR-T cells; expansion is divided by ``1 + car/K_niche`` (the
    T-cell niche) and multiplied by the proliferative capacity left after the
    lineage's ``G`` e-folds of division (:func:`_capacity`).
    """
    H = c[S_H - N_CELL]
    fit = 1.0 + p[D_DONOR] * (p[P_DONOR_FIT] - 1.0)
    boost = 1.0 + p[P_ETA_H] * (H - 1.0)
    if boost < 0.0:
        boost = 0.0
    rho = (p[P_RHO_MAX] * fit * s_ag * boost * (1.0 - i_ster) / (1.0 + car / p[P_CAR_NICHE])
           * _capacity(c[S_G - N_CELL], p))
    return rho, p[D_RB], p[D_RB] * p[P_EM_GROWTH] * p[D_EMPRES], H


@nb.njit(cache=True, error_model="numpy", inline="always")
def _rejection(T7, T0, c, p):
    """Per-capita rejection of an allogeneic product by primed host T cells (1/day)."""
    u = (T7 + T0) / p[D_LYMPH0]
    return p[P_K_REJ] * p[D_ALLO] * c[S_AP - N_CELL] * u / (p[P_REJ_HALF] + u)


CAR_PRESENT = 1e6
"""cells: CAR-T count at which alloimmune priming runs at half speed (any infused dose is
far above it; before infusion the CAR-T states sit at ~1e-250 cells, so no priming)."""


@nb.njit(cache=True, error_model="numpy")
def propensities(x, c, p, a):
    """Reaction rates a[r] (cells/day) for cell counts ``x`` and continuous states ``c``.

    This is the reaction-network form used by the stochastic engine; :func:`rhs`
    is the same network written per capita in log coordinates (a test checks
    ``d ln x/dt == STOICH.T @ a / x``).
    """
    E = x[S_E]
    M = x[S_M]
    X = x[S_X]
    B7 = x[S_B7]
    B0 = x[S_B0]
    L = x[S_L]
    T7 = x[S_T7]
    T0 = x[S_T0]
    s_ag, kappa, kld, i_ster, cf, cc, phi, dflux = drivers(E, M, X, B7, L, T7, c, p)
    rho, rb, rl, H = _growth_terms(E + M + X, c, p, s_ag, i_ster)
    em_on = p[D_EMPRES]
    em_acc = p[D_EMACC] * em_on
    crowd = (B7 + B0) / p[P_KB]
    frat = p[D_RESID] * kappa
    sb = p[P_LD_BLAST]
    a[0] = rho * E
    a[1] = (p[P_K_EM0] + p[P_K_EM] * (1.0 - s_ag)) * E
    a[2] = p[P_K_ME] * s_ag * M
    a[3] = p[P_K_EX] * (s_ag + p[P_W_SELF] * p[D_RESID]) * E
    a[4] = p[P_DELTA_E] * E
    a[5] = p[P_DELTA_M] * M
    a[6] = p[P_DELTA_X] * X
    a[7] = frat * E
    a[8] = frat * M
    a[9] = frat * X
    a[10] = kld * E
    a[11] = kld * M
    a[12] = kld * X
    rej = _rejection(T7, T0, c, p)
    a[13] = rej * E
    a[14] = rej * M
    a[15] = rej * X
    a[16] = rb * B7
    a[17] = rb * crowd * B7
    a[18] = rb * B0
    a[19] = rb * crowd * B0
    a[20] = p[P_K_SW] * B7
    a[21] = kappa * phi * B7
    a[22] = sb * kld * B7
    a[23] = sb * kld * B0
    gvl = p[D_GVL]
    a[24] = gvl * B7
    a[25] = gvl * B0
    a[26] = rl * L
    a[27] = rl * L * L / p[P_EM_CAP]
    a[28] = em_acc * kappa * phi * L
    a[29] = em_on * sb * kld * L
    a[30] = em_on * gvl * L
    a[31] = p[P_R_T] * H * T7
    a[32] = p[P_R_T] * T7
    a[33] = kappa * T7
    a[34] = kld * T7
    a[35] = p[P_R_T] * H * T0
    a[36] = p[P_R_T] * T0
    a[37] = kld * T0


@nb.njit(cache=True, error_model="numpy")
def continuous_rhs(E, car, rho, lymph, c, p, drv, dc):
    """Derivatives ``dc`` of the continuous states ``c`` (indices offset by ``N_CELL``).

    ``E`` effector CAR-T cells, ``car`` all CAR-T cells, ``rho`` the effectors'
    per-capita expansion rate (1/day, from
    :func:`_growth_terms`), ``lymph`` all lymphocytes (T7 + T0 + CAR-T), ``drv`` the
    tuple from :func:`drivers`.
    """
    s_ag, kappa, kld, i_ster, cf, cc, phi, dflux = drv
    o = N_CELL
    c2 = c[S_F2 - o] / p[D_V2]
    c3 = c[S_F3 - o] / p[D_V3]
    dc[S_F1 - o] = p[D_RATE_FLU] - p[D_CL] * cf - p[D_Q2] * (cf - c2) - p[D_Q3] * (cf - c3)
    dc[S_F2 - o] = p[D_Q2] * (cf - c2)
    dc[S_F3 - o] = p[D_Q3] * (cf - c3)
    dc[S_CY - o] = p[D_RATE_CY] - p[D_CYCL] * cc
    dc[S_FAUC - o] = 24.0 * cf  # mg*h/L per day
    dc[S_G - o] = rho  # e-folds of proliferation per day
    # alloimmune response: alloreactive host clones expand (logistic, from the precursor
    # share allo_prime0) while allogeneic cells are present, so rejection starts after a delay
    ap = c[S_AP - o]
    dc[S_AP - o] = p[P_K_PRIME] * p[D_ALLO] * ap * (1.0 - ap) * car / (CAR_PRESENT + car)

    H = c[S_H - o]
    eps = p[P_EPS_H]
    dc[S_H - o] = p[P_K_H] * (1.0 - H * (eps + (1.0 - eps) * lymph / p[D_LYMPH0]))

    a_e = s_ag * E * 1e-9
    ifng = c[S_IFNG - o]
    tnfa = c[S_TNFA - o]
    il6 = c[S_IL6 - o]
    il10 = c[S_IL10 - o]
    toci = c[S_TOCI - o]
    occ = _sat(toci, p[P_K_TOCI_KD]) if toci > 0.0 else 0.0
    dc[S_IFNG - o] = p[P_K_IFNG] * (p[P_IFNG0] - ifng) + p[P_S_IFNG] * a_e * (1.0 - i_ster)
    dc[S_TNFA - o] = p[P_K_TNFA] * (p[P_TNFA0] - tnfa) + p[P_S_TNFA] * a_e * (1.0 - i_ster)

    # stimuli are excesses over baseline (production >= 0 keeps them >= 0 up to rounding)
    g_ex = max(ifng - p[P_IFNG0], 0.0)
    t_ex = max(tnfa - p[P_TNFA0], 0.0)
    il6s = (1.0 - occ) * max(il6 - p[P_IL60], 0.0)
    stim = (g_ex / p[P_EC_IFNG] + t_ex / p[P_EC_TNFA]) * (1.0 + dflux / p[P_EC_DAMP])
    stim *= (1.0 + p[P_W_IL6] * _sat(il6s, p[P_EC_IL6])) / (1.0 + il10 / p[P_K_IL10_INH])
    A = c[S_A - o]
    dc[S_A - o] = p[P_K_A] * (stim - A)
    dc[S_IL6 - o] = (p[P_K_IL6] * (p[P_IL60] - (1.0 - p[P_F_REC] * occ) * il6)
                     + p[P_S_IL6] * A * (1.0 - i_ster))
    dc[S_IL10 - o] = (p[P_K_IL10] * (p[P_IL100] - il10) + p[P_S_IL10] * A
                      + p[P_S_IL10E] * a_e)
    dc[S_TOCI - o] = -p[P_K_TOCI] * toci
    dc[S_DEX - o] = -p[P_K_DEX] * c[S_DEX - o]

    ktr = 2.0 / p[P_MTT_MY]
    mp = c[S_MP - o]
    mn = c[S_MN - o]
    e_cy = p[P_EMAX_CY_MY] * _sat(cc, p[P_EC50_CY_MY])
    e_fl = p[P_EMAX_FLU_MY] * _sat(cf, p[P_EC50_FLU_MY])
    # inflammatory myelosuppression (ICAHT): IFN-gamma over baseline holds myeloid
    # precursors back from dividing while CAR-T cells are engaged
    e_ig = p[P_EMAX_IFNG_MY] * _sat(g_ex, p[P_EC50_IFNG_MY]) if g_ex > 0.0 else 0.0
    e_my = 1.0 - (1.0 - e_cy) * (1.0 - e_fl) * (1.0 - e_ig)
    fb = (1.0 / mn) ** p[P_GAMMA_MY] if mn > 1e-12 else 1e12 ** p[P_GAMMA_MY]
    dc[S_MP - o] = ktr * mp * (1.0 - e_my) * fb - ktr * mp
    dc[S_MN - o] = ktr * (mp - mn)


@nb.njit(cache=True, error_model="numpy")
def rhs(t, y, p, dydt):
    """ODE right-hand side in solver coordinates (ln for the ``N_CELL`` cell species).

    The reaction network of :func:`propensities` written per capita, with no
    allocation: ``d ln x_i/dt = sum_r S_ri a_r / x_i``.
    """
    E = np.exp(y[S_E])
    M = np.exp(y[S_M])
    X = np.exp(y[S_X])
    B7 = np.exp(y[S_B7])
    B0 = np.exp(y[S_B0])
    L = np.exp(y[S_L])
    T7 = np.exp(y[S_T7])
    T0 = np.exp(y[S_T0])
    c = y[N_CELL:]
    drv = drivers(E, M, X, B7, L, T7, c, p)
    s_ag, kappa, kld, i_ster, cf, cc, phi, dflux = drv
    rho, rb, rl, H = _growth_terms(E + M + X, c, p, s_ag, i_ster)
    em_on = p[D_EMPRES]
    em_acc = p[D_EMACC] * em_on
    crowd = (B7 + B0) / p[P_KB]
    frat = p[D_RESID] * kappa
    sb = p[P_LD_BLAST]
    to_mem = p[P_K_EM0] + p[P_K_EM] * (1.0 - s_ag)
    reac = p[P_K_ME] * s_ag
    to_exh = p[P_K_EX] * (s_ag + p[P_W_SELF] * p[D_RESID])
    car_loss = frat + kld + _rejection(T7, T0, c, p)
    dydt[S_E] = (rho - to_mem - to_exh - p[P_DELTA_E] - car_loss + reac * M / E)
    dydt[S_M] = to_mem * E / M - reac - p[P_DELTA_M] - car_loss
    dydt[S_X] = to_exh * E / X - p[P_DELTA_X] - car_loss
    blast_net = rb - rb * crowd - sb * kld - p[D_GVL]
    dydt[S_B7] = blast_net - p[P_K_SW] - kappa * phi
    dydt[S_B0] = blast_net + p[P_K_SW] * B7 / B0
    dydt[S_L] = (rl - rl * L / p[P_EM_CAP] - em_acc * kappa * phi
                 - em_on * (sb * kld + p[D_GVL]))
    t_net = p[P_R_T] * (H - 1.0) - kld
    dydt[S_T7] = t_net - kappa
    dydt[S_T0] = t_net
    car = E + M + X
    continuous_rhs(E, car, rho, T7 + T0 + car, c, p, drv, dydt[N_CELL:])
