r"""Analytic Jacobian of the ``cd7`` ODE right-hand side :func:`cartsim.models.cd7_kernel.rhs`.

Kept apart from the kernel so that the equations stay written once: every
expression here is the derivative of a line of :mod:`cartsim.models.cd7_kernel`
(``drivers``, ``_growth_terms``, ``rhs``, ``continuous_rhs``), and
``tests/models/test_cd7_jacobian.py`` checks it against central finite
differences of ``rhs`` at random states and along a simulated trajectory.
"""

import numba as nb
import numpy as np

from cartsim.models import cd7_kernel as K
from cartsim.models.cd7_kernel import _sat


@nb.njit(cache=True, error_model="numpy")
def jac(t, y, p, J):
    r"""Analytic Jacobian of the ``cd7`` right-hand side in solver coordinates.

    Fills the full ``N_STATE x N_STATE`` (25 x 25) matrix

    .. math:: J_{ij} = \frac{\partial \dot y_i}{\partial y_j}

    of :func:`cartsim.models.cd7_kernel.rhs` at ``(t, y)`` with parameters ``p``
    (the model is autonomous, ``t`` is unused). For the ``N_CELL`` cell species
    the solver state is :math:`y_j = \ln x_j`, so by the chain rule

    .. math:: \frac{\partial}{\partial y_j} = x_j \frac{\partial}{\partial x_j},

    e.g. a per-capita term :math:`c\, x_k / x_i` in :math:`\dot y_i` contributes
    :math:`+c\, x_k/x_i` to column :math:`k` and :math:`-c\, x_k/x_i` to column
    :math:`i`. The remaining states are linear.

    The non-smooth points take the derivative of the branch ``rhs`` takes:
    :math:`\max(u, 0)` has slope 0 for :math:`u \le 0`, the steroid inhibition and
    tocilizumab occupancy are constant (0) for non-positive amounts, the clamped
    homeostatic boost has slope 0 where it is clamped, and the myeloid feedback
    is constant for ``myeloid_blood <= 1e-12``.

    Parameters
    ----------
    t : float
        Time (days); unused.
    y : ndarray, shape (N_STATE,)
        State in solver coordinates (ln cells for states ``0 .. N_CELL - 1``).
    p : ndarray, shape (N_P,)
        Kernel parameter vector (model parameters and patient/regimen slots).
    J : ndarray, shape (N_STATE, N_STATE)
        Output; overwritten entirely.

    Notes
    -----
    Costs about two ``rhs`` evaluations (one ``exp`` per cell state, one power,
    no allocation; ~250 ns against ~130 ns for ``rhs``). Checked against central finite
    differences of ``rhs`` in ``tests/models/test_cd7_jacobian.py``.
    """
    n = K.N_STATE
    for i in range(n):
        for j in range(n):
            J[i, j] = 0.0

    # --- states ---------------------------------------------------------------------------
    E = np.exp(y[K.S_E])
    M = np.exp(y[K.S_M])
    X = np.exp(y[K.S_X])
    B7 = np.exp(y[K.S_B7])
    B0 = np.exp(y[K.S_B0])
    L = np.exp(y[K.S_L])
    T7 = np.exp(y[K.S_T7])
    T0 = np.exp(y[K.S_T0])
    xs = (E, M, X, B7, B0, L, T7, T0)

    # --- drivers and their partial derivatives ------------------------------------------------
    dens = p[K.D_DENS]
    em_on = p[K.D_EMPRES]
    em_acc = p[K.D_EMACC] * em_on
    wr = p[K.P_W_SELF] * p[K.D_RESID]
    ag = dens * (B7 + em_acc * L) + T7
    k_ag = p[K.P_K_AG]
    s_ag = _sat(ag, k_ag)
    s_ag_p = k_ag / ((k_ag + ag) * (k_ag + ag))  # dS_ag/dag
    dex = y[K.S_DEX]
    if dex > 0.0:
        ec_dex = p[K.P_EC50_DEX]
        i_ster = p[K.P_IMAX_STER] * _sat(dex, ec_dex)
        di_ster = p[K.P_IMAX_STER] * ec_dex / ((ec_dex + dex) * (ec_dex + dex))
    else:
        i_ster = 0.0
        di_ster = 0.0
    omi = 1.0 - i_ster
    d50 = p[K.P_D50]
    phi = dens * (1.0 + d50) / (dens + d50)
    targets = phi * (B7 + em_acc * L) + T7
    sig_x = p[K.P_SIGMA_X]
    ek = E + sig_x * X
    theta = p[K.P_THETA]
    kk = p[K.P_K_KILL]
    den = p[K.P_K_KILL_HALF] + ek + theta * targets
    inv_den = 1.0 / den
    kappa0 = kk * ek * inv_den  # kill rate without steroid inhibition
    kappa = kappa0 * omi
    dk0_dek = kk * (den - ek) * inv_den * inv_den
    dk0_dtg = -kappa0 * theta * inv_den
    v1 = p[K.D_V1]
    cyv = p[K.D_CYV]
    cf = y[K.S_F1] / v1
    cc = y[K.S_CY] / cyv
    ec_f = p[K.P_EC50_FLU]
    ec_c = p[K.P_EC50_CY]
    dkld_f1 = p[K.P_KMAX_FLU] * ec_f / ((ec_f + cf) * (ec_f + cf)) / v1
    dkld_cy = p[K.P_KMAX_CY] * ec_c / ((ec_c + cc) * (ec_c + cc)) / cyv
    dflux = kappa * targets * 1e-9

    # --- growth terms -------------------------------------------------------------------------
    H = y[K.S_H]
    fit = 1.0 + p[K.D_DONOR] * (p[K.P_DONOR_FIT] - 1.0)
    eta = p[K.P_ETA_H]
    boost = 1.0 + eta * (H - 1.0)
    dboost = eta
    if boost < 0.0:
        boost = 0.0
        dboost = 0.0
    car = E + M + X
    niche = 1.0 / (1.0 + car / p[K.P_CAR_NICHE])  # T-cell niche factor g
    G = y[K.S_G]
    if G > 0.0:
        gr = (G / p[K.P_G_CAP]) ** p[K.P_G_HILL]
        cap = 1.0 / (1.0 + gr)
        dcap = -p[K.P_G_HILL] * gr / G * cap * cap  # d(capacity)/dG
    else:
        cap = 1.0
        dcap = 0.0
    rho_c = p[K.P_RHO_MAX] * fit * niche * cap  # rho = rho_c * s_ag * boost * omi
    rho_s = rho_c * boost * omi  # drho/ds_ag
    rb = p[K.D_RB]
    rl = rb * p[K.P_EM_GROWTH] * em_on

    # --- cell-equation coefficients -----------------------------------------------------------
    resid = p[K.D_RESID]
    sb = p[K.P_LD_BLAST]
    k_em = p[K.P_K_EM]
    k_me = p[K.P_K_ME]
    k_ex = p[K.P_K_EX]
    to_mem = p[K.P_K_EM0] + k_em * (1.0 - s_ag)
    reac = k_me * s_ag
    to_exh = k_ex * (s_ag + wr)
    ap = y[K.S_AP]
    u_h = (T7 + T0) / p[K.D_LYMPH0]
    u50 = p[K.P_REJ_HALF]
    krej0 = p[K.P_K_REJ] * p[K.D_ALLO]
    rej_ap = krej0 * u_h / (u50 + u_h)  # rejection = ap * rej_ap
    krej = krej0 * ap * u50 / ((u50 + u_h) * (u50 + u_h)) / p[K.D_LYMPH0]  # d(rej)/d(T7+T0)
    m_e = M / E
    e_m = E / M
    e_x = E / X
    cs_e = k_em - k_ex + k_me * m_e  # d(dydt_E)/ds_ag without rho
    cs_m = -(k_em * e_m + k_me)  # d(dydt_M)/ds_ag
    cs_x = k_ex * e_x  # d(dydt_X)/ds_ag

    # --- continuous-state coefficients --------------------------------------------------------
    kh = p[K.P_K_H]
    eps = p[K.P_EPS_H]
    lymph0 = p[K.D_LYMPH0]
    lymph = T7 + T0 + E + M + X
    c_h_lymph = -kh * H * (1.0 - eps) / lymph0  # d(dH)/d(lymph)
    a_e = s_ag * E * 1e-9
    s_g = p[K.P_S_IFNG]
    s_t = p[K.P_S_TNFA]
    s_10e = p[K.P_S_IL10E]
    ifng = y[K.S_IFNG]
    tnfa = y[K.S_TNFA]
    il6 = y[K.S_IL6]
    il10 = y[K.S_IL10]
    toci = y[K.S_TOCI]
    kd = p[K.P_K_TOCI_KD]
    if toci > 0.0:
        occ = _sat(toci, kd)
        docc = kd / ((kd + toci) * (kd + toci))
    else:
        occ = 0.0
        docc = 0.0
    u = ifng - p[K.P_IFNG0]
    g_ex = u if u > 0.0 else 0.0
    dg_ex = 1.0 if u > 0.0 else 0.0
    u = tnfa - p[K.P_TNFA0]
    t_ex = u if u > 0.0 else 0.0
    dt_ex = 1.0 if u > 0.0 else 0.0
    u = il6 - p[K.P_IL60]
    i6_ex = u if u > 0.0 else 0.0
    di6_ex = 1.0 if u > 0.0 else 0.0
    il6s = (1.0 - occ) * i6_ex
    ec_g = p[K.P_EC_IFNG]
    ec_t = p[K.P_EC_TNFA]
    ec_d = p[K.P_EC_DAMP]
    ec_6 = p[K.P_EC_IL6]
    w_6 = p[K.P_W_IL6]
    k10i = p[K.P_K_IL10_INH]
    s_cyt = g_ex / ec_g + t_ex / ec_t  # cytokine signal
    s_kill = 1.0 + dflux / ec_d  # contact/debris amplification
    stim0 = s_cyt * s_kill
    mult = 1.0 + w_6 * _sat(il6s, ec_6)
    inh = 1.0 / (1.0 + il10 / k10i)
    ka = p[K.P_K_A]
    ka_mi = ka * mult * inh
    c_a_dflux = ka_mi * s_cyt / ec_d  # dA'/d(dflux)
    c_a_il6s = ka * stim0 * inh * w_6 * ec_6 / ((ec_6 + il6s) * (ec_6 + il6s))  # dA'/d(il6s)

    # --- columns of the cell species ----------------------------------------------------------
    # d(quantity)/dx_j per cell species j (S_E .. S_T0); in log coordinates
    # d(quantity)/dy_j = coefficient * x_j
    ag_c = (0.0, 0.0, 0.0, dens, 0.0, dens * em_acc, 1.0, 0.0)  # antigen ag
    ek_c = (1.0, 0.0, sig_x, 0.0, 0.0, 0.0, 0.0, 0.0)  # effector load ek
    tg_c = (0.0, 0.0, 0.0, phi, 0.0, phi * em_acc, 1.0, 0.0)  # targets
    ly_c = (1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0)  # lymphocytes
    c_dk = -resid  # d(dydt_{E,M,X})/dkappa
    ly_car = (1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # CAR-T cells
    d_niche = -rho_c * s_ag * boost * omi * niche / p[K.P_CAR_NICHE]  # d(rho)/d(car)
    for j in range(K.N_CELL):
        xj = xs[j]
        ds = s_ag_p * ag_c[j] * xj
        dtg = tg_c[j] * xj
        dk = omi * (dk0_dek * ek_c[j] * xj + dk0_dtg * dtg)
        drho = rho_s * ds + d_niche * ly_car[j] * xj
        J[K.S_G, j] = drho
        J[K.S_E, j] = drho + cs_e * ds + c_dk * dk
        J[K.S_M, j] = cs_m * ds + c_dk * dk
        J[K.S_X, j] = cs_x * ds + c_dk * dk
        J[K.S_B7, j] = -phi * dk
        J[K.S_L, j] = -em_acc * phi * dk
        J[K.S_T7, j] = -dk
        J[K.S_H, j] = c_h_lymph * ly_c[j] * xj
        dae = 1e-9 * E * ds
        J[K.S_IFNG, j] = s_g * omi * dae
        J[K.S_TNFA, j] = s_t * omi * dae
        J[K.S_IL10, j] = s_10e * dae
        J[K.S_A, j] = c_a_dflux * 1e-9 * (dk * targets + kappa * dtg)

    # rejection of an allogeneic product by host T cells (T7, T0)
    for i in (K.S_E, K.S_M, K.S_X):
        J[i, K.S_T7] -= krej * T7
        J[i, K.S_T0] -= krej * T0
    for i in (K.S_E, K.S_M, K.S_X):
        J[i, K.S_AP] = -rej_ap
    # alloimmune response: dP/dt = kp P (1 - P) car / (C + car)
    kp = p[K.P_K_PRIME] * p[K.D_ALLO]
    cp = K.CAR_PRESENT
    J[K.S_AP, K.S_AP] = kp * (1.0 - 2.0 * ap) * car / (cp + car)
    dprime = kp * ap * (1.0 - ap) * cp / ((cp + car) * (cp + car))
    J[K.S_AP, K.S_E] = dprime * E
    J[K.S_AP, K.S_M] = dprime * M
    J[K.S_AP, K.S_X] = dprime * X
    # proliferative capacity G
    drho_g = p[K.P_RHO_MAX] * fit * niche * dcap * s_ag * boost * omi
    J[K.S_E, K.S_G] = drho_g
    J[K.S_G, K.S_G] = drho_g

    # per-capita ratio terms (d(x_k/x_i)/dy = x_k/x_i (e_k - e_i)) and crowding
    J[K.S_E, K.S_E] -= reac * m_e
    J[K.S_E, K.S_M] += reac * m_e
    J[K.S_M, K.S_E] += to_mem * e_m
    J[K.S_M, K.S_M] -= to_mem * e_m
    J[K.S_X, K.S_E] += to_exh * e_x
    J[K.S_X, K.S_X] -= to_exh * e_x
    kb = p[K.P_KB]
    c7 = rb * B7 / kb
    c0 = rb * B0 / kb
    sw = p[K.P_K_SW] * B7 / B0
    J[K.S_B7, K.S_B7] -= c7
    J[K.S_B7, K.S_B0] -= c0
    J[K.S_B0, K.S_B7] -= c7 - sw
    J[K.S_B0, K.S_B0] -= c0 + sw
    J[K.S_L, K.S_L] -= rl * L / p[K.P_EM_CAP]
    # a_e = s_ag E 1e-9 also depends on E directly
    dae = a_e
    J[K.S_IFNG, K.S_E] += s_g * omi * dae
    J[K.S_TNFA, K.S_E] += s_t * omi * dae
    J[K.S_IL10, K.S_E] += s_10e * dae

    # --- homeostatic cytokine H ---------------------------------------------------------------
    r_t = p[K.P_R_T]
    J[K.S_E, K.S_H] = rho_c * s_ag * omi * dboost
    J[K.S_G, K.S_H] = rho_c * s_ag * omi * dboost
    J[K.S_T7, K.S_H] = r_t
    J[K.S_T0, K.S_H] = r_t
    J[K.S_H, K.S_H] = -kh * (eps + (1.0 - eps) * lymph / lymph0)

    # --- dexamethasone (steroid inhibition) ---------------------------------------------------
    dk = -kappa0 * di_ster
    J[K.S_E, K.S_DEX] = -rho_c * s_ag * boost * di_ster + c_dk * dk
    J[K.S_G, K.S_DEX] = -rho_c * s_ag * boost * di_ster
    J[K.S_M, K.S_DEX] = c_dk * dk
    J[K.S_X, K.S_DEX] = c_dk * dk
    J[K.S_B7, K.S_DEX] = -phi * dk
    J[K.S_L, K.S_DEX] = -em_acc * phi * dk
    J[K.S_T7, K.S_DEX] = -dk
    J[K.S_IFNG, K.S_DEX] = -s_g * a_e * di_ster
    J[K.S_TNFA, K.S_DEX] = -s_t * a_e * di_ster
    J[K.S_A, K.S_DEX] = c_a_dflux * 1e-9 * dk * targets
    J[K.S_IL6, K.S_DEX] = -p[K.P_S_IL6] * y[K.S_A] * di_ster
    J[K.S_DEX, K.S_DEX] = -p[K.P_K_DEX]

    # --- lymphodepleting drugs and myeloid compartment ----------------------------------------
    ktr = 2.0 / p[K.P_MTT_MY]
    mp = y[K.S_MP]
    mn = y[K.S_MN]
    ec_cm = p[K.P_EC50_CY_MY]
    ec_fm = p[K.P_EC50_FLU_MY]
    e_cy = p[K.P_EMAX_CY_MY] * _sat(cc, ec_cm)
    e_fl = p[K.P_EMAX_FLU_MY] * _sat(cf, ec_fm)
    g_exm = max(ifng - p[K.P_IFNG0], 0.0)
    ec_gm = p[K.P_EC50_IFNG_MY]
    e_ig = p[K.P_EMAX_IFNG_MY] * _sat(g_exm, ec_gm) if g_exm > 0.0 else 0.0
    surv = (1.0 - e_cy) * (1.0 - e_fl) * (1.0 - e_ig)  # 1 - E_my
    gam = p[K.P_GAMMA_MY]
    if mn > 1e-12:
        fb = (1.0 / mn) ** gam
        dfb = -gam * fb / mn
    else:
        fb = 1e12 ** gam
        dfb = 0.0
    for col in (K.S_F1, K.S_CY):
        dkld = dkld_f1 if col == K.S_F1 else dkld_cy
        J[K.S_E, col] = -dkld
        J[K.S_M, col] = -dkld
        J[K.S_X, col] = -dkld
        J[K.S_B7, col] = -sb * dkld
        J[K.S_B0, col] = -sb * dkld
        J[K.S_L, col] = -em_on * sb * dkld
        J[K.S_T7, col] = -dkld
        J[K.S_T0, col] = -dkld
    v2 = p[K.D_V2]
    v3 = p[K.D_V3]
    q2 = p[K.D_Q2]
    q3 = p[K.D_Q3]
    J[K.S_F1, K.S_F1] = -(p[K.D_CL] + q2 + q3) / v1
    J[K.S_F1, K.S_F2] = q2 / v2
    J[K.S_F1, K.S_F3] = q3 / v3
    J[K.S_F2, K.S_F1] = q2 / v1
    J[K.S_F2, K.S_F2] = -q2 / v2
    J[K.S_F3, K.S_F1] = q3 / v1
    J[K.S_F3, K.S_F3] = -q3 / v3
    J[K.S_CY, K.S_CY] = -p[K.D_CYCL] / cyv
    J[K.S_FAUC, K.S_F1] = 24.0 / v1
    ktr_mp_fb = ktr * mp * fb
    J[K.S_MP, K.S_F1] = -ktr_mp_fb * (1.0 - e_cy) * (1.0 - e_ig) * p[K.P_EMAX_FLU_MY] * ec_fm / (
        (ec_fm + cf) * (ec_fm + cf)) / v1
    J[K.S_MP, K.S_CY] = -ktr_mp_fb * (1.0 - e_fl) * (1.0 - e_ig) * p[K.P_EMAX_CY_MY] * ec_cm / (
        (ec_cm + cc) * (ec_cm + cc)) / cyv
    if g_exm > 0.0:
        J[K.S_MP, K.S_IFNG] = -ktr_mp_fb * (1.0 - e_cy) * (1.0 - e_fl) * p[K.P_EMAX_IFNG_MY] * (
            ec_gm / ((ec_gm + g_exm) * (ec_gm + g_exm)))
    J[K.S_MP, K.S_MP] = ktr * (surv * fb - 1.0)
    J[K.S_MP, K.S_MN] = ktr * mp * surv * dfb
    J[K.S_MN, K.S_MP] = ktr
    J[K.S_MN, K.S_MN] = -ktr

    # --- cytokines, macrophage activation, tocilizumab ----------------------------------------
    k6 = p[K.P_K_IL6]
    f_rec = p[K.P_F_REC]
    J[K.S_IFNG, K.S_IFNG] = -p[K.P_K_IFNG]
    J[K.S_TNFA, K.S_TNFA] = -p[K.P_K_TNFA]
    J[K.S_A, K.S_IFNG] = ka_mi * s_kill * dg_ex / ec_g
    J[K.S_A, K.S_TNFA] = ka_mi * s_kill * dt_ex / ec_t
    J[K.S_A, K.S_IL6] = c_a_il6s * (1.0 - occ) * di6_ex
    J[K.S_A, K.S_TOCI] = -c_a_il6s * docc * i6_ex
    J[K.S_A, K.S_IL10] = -ka * stim0 * mult * inh * inh / k10i
    J[K.S_A, K.S_A] = -ka
    J[K.S_IL6, K.S_A] = p[K.P_S_IL6] * omi
    J[K.S_IL6, K.S_IL6] = -k6 * (1.0 - f_rec * occ)
    J[K.S_IL6, K.S_TOCI] = k6 * f_rec * docc * il6
    J[K.S_IL10, K.S_A] = p[K.P_S_IL10]
    J[K.S_IL10, K.S_IL10] = -p[K.P_K_IL10]
    J[K.S_TOCI, K.S_TOCI] = -p[K.P_K_TOCI]
