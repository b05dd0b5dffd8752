"""Default parameter set of the ``cd7`` model.

Every entry: name, value, unit, bounds, source. Values transferred from CD19
(B-ALL) products or from other CAR-T models are marked as transfer
assumptions; values chosen so that the default patient reproduces the
qualitative course of CD7 CAR-T trials (expansion peak day 7-21, marrow
remission by day 28, T-cell aplasia of CD7+ cells, cytokine peak in the first
two weeks) are marked "assumption (calibrated): ..." with the fact they were
tuned to. Full references are in ``science/parameters.md`` (in the repository) and the
README.

The order of this list is the kernel's parameter layout
(``cartsim.models.cd7_kernel.PARAM_NAMES``); a test checks they agree.
"""

from __future__ import annotations

import math

from cartsim.parameters.base import Parameter as P
from cartsim.parameters.base import ParameterSet

LN2 = math.log(2.0)

STEIN = "Stein et al. 2019 CPT:PSP 8:285"
KIMMEL = "Kimmel, Locke & Altrock 2021 Proc R Soc B 288:20210229"
SINGH = "Singh et al. 2020 mAbs 12:1688616"
VARELA = "Varela-Gonzalez-Aller et al. 2025 Pharmaceutics 17:1592"
AHMED = "Ahmed et al. 2020 Front Pharmacol 11:406"
CAL = "assumption (calibrated): "
CALREF = ("calibrated 2026-12-07 (third calibration) by experiments/calibrate.py --fit: "
          "likelihood over the 52 figures of science/targets.md (8 trials), 256-point Sobol "
          "design over 16 values and three Nelder-Mead runs at 8x each trial's size, then "
          "one Nelder-Mead run at 16x (experiments/calibration16.yaml); best point in "
          "experiments/calibration_results/best.yaml")

CD7_PARAMETERS = ParameterSet(
    [
        # --- CAR-T expansion ------------------------------------------------------------
        P("rho_max", 0.650303, "1/day", 0.1, 5.0,
          f"{CAL}virtual NCT05290155 cohort: median peak ~6e4 copies/ug near day 10-12 "
          f"(observed 62,390 on day 12); order of {SINGH} Kexp_max 0.0906/h = 2.2/day; "
          f"{CALREF}",
          "maximal antigen-driven proliferation rate of effector CAR-T cells"),
        P("car_niche", 5e12, "cells", 1e9, 1e14,
          "assumption: expansion slows only when CAR-T cells exceed the whole-body "
          "lymphocyte pool several-fold (whole-body lymphocytes ~5e11; Kimmel 2021 carrying "
          "capacities K_N 2.5e11, K_C 7e10 cells); set high so that antigen and "
          "proliferative capacity, not the niche, bound the peak (the 14 NCT05290155 "
          "patients reached 326,483 copies/ug)",
          "CAR-T count halving the expansion rate (T-cell niche)"),
        P("k_ag", 5.65942e+08, "cells", 1e7, 1e13,
          f"{CAL}half-saturating antigen-positive target count, ~1-2% of baseline "
          "whole-body CD7+ load, so stimulation saturates until targets are largely cleared; "
          f"set with rho_max and k_kill to the NCT05290155 peak and its timing; {CALREF}",
          "antigen load giving half-maximal CAR-T stimulation"),
        P("eta_h", 0.15, "-", 0.0, 2.0,
          "assumption: low-dose Cy/Flu raised IL-15, and high IL-15 went with higher CAR-T "
          "peaks (Kochenderfer 2017 JCO); modest boost per unit rise of IL-7/IL-15",
          "boost of CAR-T proliferation per unit rise of homeostatic cytokines"),
        P("w_self", 1.0, "-", 0.0, 10.0,
          "assumption: CD7 left on CAR-T cells engages neighbouring CAR-T cells (tonic "
          "signalling), which drives exhaustion and fratricide rather than net expansion "
          "(Gomes-Silva 2017 Blood 130:285: unedited CD7 CAR-T cells expand poorly); "
          "exhaustion from it is k_ex * w_self * residual_cd7",
          "exhaustion drive of residual CD7 on CAR-T cells, per unit residual CD7"),
        P("donor_fitness", 1.15, "-", 0.5, 3.0,
          "assumption: healthy-donor T cells expand better than heavily pretreated "
          "autologous T cells (Pan 2021 JCO 39:3340 reports robust expansion)",
          "multiplier on proliferation for donor-derived products"),
        P("expansion_capacity", 24.7964, "e-folds", 2.0, 40.0,
          f"{CAL}proliferative capacity of the infused lineage: cumulative proliferation "
          f"(integral of the expansion rate) at which expansion halves; prior range 12-28 "
          f"e-folds of division, i.e. a net fold-expansion of order e^8 ~ 3,900 after deaths "
          f"({STEIN}: foldx 3,900 with log-IIV omega^2 2.4; replicative exhaustion); "
          f"between-patient spread and the poor-expander class are in the population; "
          f"{CALREF}",
          "proliferative capacity of the CAR-T lineage (e-folds of division)"),
        P("capacity_hill", 4.0, "-", 1.0, 10.0,
          "assumption: capacity is lost over a few e-folds around expansion_capacity "
          "(a steep but smooth limit on divisions)",
          "steepness of the loss of proliferative capacity"),
        P("k_reject", 1.77476, "1/day", 0.0, 50.0,
          f"{CAL}HLA-mismatched off-the-shelf CAR-T cells are rejected by host T cells as "
          "these recover after lymphodepletion: GC027 (Leukemia 2023;37:2176) peaked on days "
          "5-10 and was undetectable by week 4 in 9/11 responders; applies only to products "
          f"with allogeneic=true; prior range 0.3-3/day; {CALREF}",
          "rejection rate of allogeneic CAR-T cells at the baseline host T-cell count"),
        P("k_prime", 0.339665, "1/day", 0.0, 10.0,
          f"{CAL}a primary alloimmune T-cell response against HLA-mismatched cells is a "
          "clonal expansion of alloreactive host T cells (doubling ~1.2 d) that takes 1-2 "
          "weeks to reach rejecting strength (from allo_prime0: half-maximal after "
          "ln(1/allo_prime0 - 1)/k_prime ~ 9 d), so allogeneic CAR-T cells expand freely in "
          "the first week (GC027 peak on days 5-10, Leukemia 2023;37:2176); prior range "
          f"0.25-1.5/day; {CALREF}",
          "growth rate of the host alloimmune response (allogeneic products only)"),
        P("allo_prime0", 0.005, "-", 1e-6, 0.5,
          "assumption: alloreactive host T-cell precursors at infusion relative to the fully "
          "primed response (alloreactive precursors ~1-10% of T cells, Suchin et al. 2001 J "
          "Immunol 166:973, most of them removed by lymphodepletion)",
          "initial alloimmune response (fraction of its maximum; allogeneic products only)"),
        P("reject_t_half", 0.02, "-", 1e-4, 10.0,
          "assumption: a few % of the baseline host T-cell pool (what remains after "
          "lymphodepletion) already carries the primed alloreactive clones, so rejection "
          "needs host T cells to be present, not fully recovered",
          "host T cells (fraction of baseline) giving half-maximal rejection"),
        # --- differentiation and death ----------------------------------------------------
        P("k_em0", 0.005, "1/day", 0.0, 1.0,
          f"{CAL}basal memory formation sets the persistence plateau (FB ~ 0.8% of peak "
          f"in {STEIN})",
          "antigen-independent effector -> memory differentiation"),
        P("k_em", 0.03, "1/day", 0.0, 1.0,
          f"{CAL}memory formation as antigen falls; with delta_e gives contraction t1/2 "
          f"~4 d ({STEIN}: initial t1/2 4.3 d)",
          "antigen-withdrawal effector -> memory differentiation"),
        P("k_me", 0.2, "1/day", 0.0, 5.0,
          "assumption: memory cells re-enter the effector pool within days of antigen "
          "re-encounter",
          "memory -> effector reactivation at full antigen saturation"),
        P("k_ex", 0.05, "1/day", 0.0, 2.0,
          "assumption: exhaustion under chronic stimulation over weeks",
          "effector -> exhausted differentiation at full antigen saturation"),
        P("delta_e", 0.16, "1/day", 0.01, 2.0,
          f"{STEIN}: alpha = 0.16/day (initial decline t1/2 4.3 d), transfer from CD19",
          "death rate of effector CAR-T cells"),
        P("delta_m", 0.0032, "1/day", 1e-5, 0.1,
          f"{STEIN}: beta = 0.0032/day (terminal t1/2 220 d), transfer from CD19",
          "death rate of memory CAR-T cells"),
        P("delta_x", 0.3, "1/day", 0.01, 5.0,
          "assumption: exhausted T cells are short-lived (t1/2 ~2 d)",
          "death rate of exhausted CAR-T cells"),
        # --- killing ------------------------------------------------------------------------
        P("k_kill", 2.03103, "1/day", 0.01, 20.0,
          f"{CAL}order of {KIMMEL} gamma_B = 1.15/day (axi-cel, transfer; prior range "
          f"0.3-2.5/day); sets how fast blasts clear (MRD-negative CR by day 28 in 19/20, Lu "
          f"2022 Blood 140:321) and, through the kill flux, CRS; {CALREF}",
          "maximal per-target killing rate by CAR-T effectors"),
        P("k_kill_half", 2.024e9, "cells", 1e6, 1e12,
          f"{KIMMEL}: k_B = 2.024e9 cells (transfer)",
          "effector count giving half-maximal killing"),
        P("theta_kill", 0.2, "-", 0.0, 100.0,
          "assumption: one effector kills at most k_kill/theta ~6 targets/day (serial "
          "killing of a few targets per CAR-T cell per day), so killing is limited by the "
          "effector-to-target ratio while the tumour is large",
          "target-crowding weight in the kill rate (effector-to-target dependence)"),
        P("sigma_x", 0.1, "-", 0.0, 1.0,
          "assumption: exhausted cells keep ~10% cytotoxicity",
          "relative killing capacity of exhausted CAR-T cells"),
        P("d50_kill", 0.3, "-", 0.01, 10.0,
          f"assumption: killing saturates in antigen density ({SINGH}: IC50 ~10 "
          f"CAR-antigen complexes per cell, far below typical density)",
          "relative CD7 density giving half-maximal killing efficiency"),
        # --- blasts ---------------------------------------------------------------------------
        P("k_switch", 0.0, "1/day", 0.0, 1e-3,
          "assumption (calibrated): off by default; CD7-negative relapse comes from "
          "pre-existing CD7- clones present in a minority of patients (population "
          "cd7neg_clone_probability; Tan 2023 J Hematol Oncol 16: 4 CD7- relapses of 20). Any "
          "rate > 0 generates a CD7- clone in every patient that the ODE regrows",
          "rate of CD7+ to CD7- blast phenotype switching"),
        P("blast_capacity", 2e12, "cells", 1e10, 1e14,
          "assumption: packed marrow ~2e12 blasts (whole-body marrow ~1e12 nucleated cells, "
          "expanded in leukemic infiltration)",
          "carrying capacity of marrow blasts"),
        P("marrow_normal_cells", 5e11, "cells", 1e10, 5e12,
          "assumption: normal nucleated marrow cells in an adult (~0.5e12 of ~1e12 total "
          "marrow cells), denominator of marrow blast %",
          "normal nucleated marrow cells"),
        P("em_growth_factor", 0.75, "-", 0.0, 5.0,
          "assumption: extramedullary masses grow somewhat slower than marrow blasts",
          "extramedullary growth rate relative to marrow blast growth"),
        P("em_capacity", 1e12, "cells", 1e9, 1e14,
          "assumption: ~1 L of tumour at 1e9 cells/cm3",
          "carrying capacity of the extramedullary mass"),
        # --- normal T cells and homeostatic cytokines -------------------------------------------
        P("r_t", 0.012, "1/day", 1e-4, 1.0,
          f"{CAL}CD7- T cells refill the niche over weeks (Pan 2021 JCO); cf. {KIMMEL} "
          f"r_N = 0.17/day at full depletion",
          "normal T-cell turnover rate (homeostatic birth = r_t*H, death = r_t)"),
        P("k_h", 2.0, "1/day", 0.01, 100.0,
          "assumption: IL-7/IL-15 levels track lymphocyte consumption within a day "
          "(Hirayama 2019 Blood 133:1876: IL-7 rises after LD)",
          "turnover rate of the homeostatic-cytokine level"),
        P("eps_h", 0.05, "-", 0.001, 1.0,
          "assumption: homeostatic cytokines rise at most ~20-fold when lymphocytes vanish",
          "non-lymphocyte share of homeostatic-cytokine consumption"),
        # --- lymphodepletion pharmacodynamics ----------------------------------------------
        P("kmax_flu", 1.4, "1/day", 0.0, 50.0,
          f"{CAL}Flu/Cy 30/300 lowers lymphocytes ~95% by day 0",
          "maximal lymphocyte kill rate by F-ara-A"),
        P("ec50_flu", 0.2, "mg/L", 1e-3, 10.0,
          "assumption: F-ara-A is lymphotoxic at 0.1-1 mg/L (plasma Cmax ~1 mg/L after "
          f"30 mg/m2; {VARELA})",
          "F-ara-A concentration for half-maximal kill"),
        P("kmax_cy", 0.9, "1/day", 0.0, 50.0,
          f"{CAL}Flu/Cy 30/300 lowers lymphocytes ~95% by day 0",
          "maximal lymphocyte kill rate by cyclophosphamide"),
        P("ec50_cy", 10.0, "mg/L", 0.01, 1000.0,
          f"assumption: ~ the Cmax after 300 mg/m2 ({AHMED} V 46.5 L)",
          "cyclophosphamide concentration for half-maximal kill"),
        P("ld_blast_sens", 0.3, "-", 0.0, 2.0,
          "assumption: relapsed/refractory blasts are less chemosensitive than normal "
          "lymphocytes",
          "blast kill by lymphodepletion relative to lymphocytes"),
        # --- cytokines ---------------------------------------------------------------------------
        P("k_ifng", LN2 / (4.0 / 24.0), "1/day", 0.1, 500.0,
          "assumption: plasma IFN-gamma half-life ~4 h", "IFN-gamma clearance rate"),
        P("ifng0", 10.0, "pg/mL", 0.0, 1000.0, "assumption: healthy range 1-20 pg/mL",
          "baseline IFN-gamma"),
        P("s_ifng", 20.0, "pg/mL/day per 1e9 cells", 0.0, 1e5,
          f"{CAL}IFN-gamma peaks of hundreds of pg/mL in grade 1-2 CRS (Teachey 2016 "
          "Cancer Discov 6:664)",
          "IFN-gamma secretion per 1e9 antigen-engaged effector CAR-T cells"),
        P("k_tnfa", LN2 / (1.0 / 24.0), "1/day", 0.1, 1000.0,
          "assumption: plasma TNF-alpha half-life ~1 h", "TNF-alpha clearance rate"),
        P("tnfa0", 8.0, "pg/mL", 0.0, 1000.0, "assumption: healthy range 2-15 pg/mL",
          "baseline TNF-alpha"),
        P("s_tnfa", 6.0, "pg/mL/day per 1e9 cells", 0.0, 1e5,
          f"{CAL}TNF-alpha peaks of tens of pg/mL in CRS (Teachey 2016)",
          "TNF-alpha secretion per 1e9 antigen-engaged effector CAR-T cells"),
        P("k_a", 2.0, "1/day", 0.01, 100.0,
          "assumption: monocyte/macrophage activation follows its stimuli within ~12 h",
          "macrophage activation rate"),
        P("ec_ifng", 200.0, "pg/mL", 1.0, 1e5,
          "assumption: IFN-gamma activates macrophages at hundreds of pg/mL",
          "IFN-gamma for half-maximal macrophage activation"),
        P("ec_tnfa", 50.0, "pg/mL", 1.0, 1e5,
          "assumption: TNF-alpha activates macrophages at tens of pg/mL",
          "TNF-alpha for half-maximal macrophage activation"),
        P("ec_damp", 244.439, "1e9 cells/day", 1e-3, 1e5,
          f"{CAL}a kill flux of ~1e11 cells/day doubles the cytokine stimulation of "
          "macrophages (contact/debris signal); unsaturated, so CRS grows with the speed of "
          "tumour clearance "
          "(DAMPs and CAR-T/macrophage contact at the killing site: Santurio et al. 2025 "
          "PLoS Comput Biol; severe CRS with high burden and dose: Hay 2017 Blood 130:2295); "
          f"prior range 10-300; {CALREF}",
          "target kill flux doubling macrophage stimulation (DAMPs, contact)"),
        P("w_il6", 1.0, "-", 0.0, 10.0,
          "assumption: IL-6 trans-signalling amplifies macrophage activation (the CRS "
          "loop that tocilizumab breaks)",
          "maximal IL-6 amplification of macrophage activation"),
        P("ec_il6", 100.0, "pg/mL", 1.0, 1e5,
          "assumption: amplification at IL-6 of ~100 pg/mL",
          "IL-6 for half-maximal amplification"),
        P("k_il10_inh", 1000.0, "pg/mL", 1.0, 1e5,
          "assumption: IL-10 at the level of severe CRS (~1 ng/mL; Teachey 2016 Cancer Discov "
          "6:664) halves macrophage activation; a lower value would cancel the burden and dose "
          "dependence of CRS that trials show (Hay 2017 Blood 130:2295)",
          "IL-10 concentration halving macrophage activation"),
        P("k_il6", LN2 / (3.0 / 24.0), "1/day", 0.1, 500.0,
          "assumption: plasma IL-6 half-life ~3 h", "IL-6 clearance rate"),
        P("il60", 5.0, "pg/mL", 0.0, 1000.0, "assumption: healthy range 1-7 pg/mL",
          "baseline IL-6"),
        P("s_il6", 718.663, "pg/mL/day", 0.0, 1e7,
          f"{CAL}IL-6 peaks of 10^2-10^3 pg/mL in CD7 CAR-T CRS (mostly grade 1-2, grade >= 3 "
          f"in 5-10%; Pan 2021, Lu 2022, NCT05290155; prior range 150-2000); {CALREF}",
          "IL-6 secretion at full macrophage activation"),
        P("f_rec_toci", 0.8, "-", 0.0, 1.0,
          "assumption: receptor-mediated IL-6 clearance is lost under tocilizumab, so serum "
          "IL-6 rises after tocilizumab (Teachey 2016)",
          "share of IL-6 clearance through the IL-6 receptor"),
        P("k_toci_kd", 1.0, "mg/L", 1e-3, 100.0,
          "assumption: IL-6R blockade is near-complete at therapeutic levels (Cmax ~150 mg/L "
          "after 8 mg/kg)",
          "tocilizumab concentration for 50% IL-6R occupancy"),
        P("k_il10", LN2 / (2.5 / 24.0), "1/day", 0.1, 500.0,
          "assumption: plasma IL-10 half-life ~2.5 h", "IL-10 clearance rate"),
        P("il100", 5.0, "pg/mL", 0.0, 1000.0, "assumption: healthy range 1-10 pg/mL",
          "baseline IL-10"),
        P("s_il10", 300.0, "pg/mL/day", 0.0, 1e6,
          "assumption: IL-10 peaks of tens of pg/mL with CRS (Teachey 2016)",
          "IL-10 secretion at full macrophage activation"),
        P("s_il10e", 5.0, "pg/mL/day per 1e9 cells", 0.0, 1e5,
          "assumption: activated T cells also secrete IL-10",
          "IL-10 secretion per 1e9 antigen-engaged effector CAR-T cells"),
        # --- interventions --------------------------------------------------------------------
        P("k_toci", LN2 / 5.0, "1/day", 0.01, 10.0,
          "assumption: tocilizumab t1/2 ~5 d at 8 mg/kg in CRS (label: up to 11-13 d, "
          "concentration-dependent, shorter with high IL-6R turnover)",
          "tocilizumab elimination rate"),
        P("k_dex", LN2 / 1.0, "1/day", 0.01, 50.0,
          "assumption: dexamethasone effect wanes with t1/2 ~1 d (plasma t1/2 ~4 h, "
          "genomic effect longer)",
          "dexamethasone effect elimination rate"),
        P("imax_ster", 0.7, "-", 0.0, 1.0,
          "assumption: steroids damp CAR-T expansion, killing and cytokine release by at "
          "most 70% (Stein 2019 found no net steroid effect on expansion, Fster = 1.0)",
          "maximal steroid inhibition"),
        P("ec50_dex", 5.0, "mg", 0.01, 1000.0,
          "assumption: 10 mg dexamethasone gives ~2/3 of maximal inhibition",
          "dexamethasone amount for half-maximal inhibition"),
        # --- myelosuppression (counts the qPCR denominator) ------------------------------------
        P("mtt_myeloid", 5.0, "day", 0.5, 30.0,
          "assumption: neutrophil nadir ~1 week after Flu/Cy (Friberg 2002 J Clin Oncol "
          "20:4713 model structure with one transit compartment)",
          "mean transit time of myeloid maturation"),
        P("gamma_myeloid", 0.2, "-", 0.0, 2.0,
          "Friberg et al. 2002 J Clin Oncol 20:4713: feedback exponent ~0.2 (transfer)",
          "feedback exponent of myelopoiesis on circulating neutrophils"),
        P("emax_cy_my", 0.99, "-", 0.0, 1.0,
          f"assumption: Cy lowers ANC in proportion to exposure ({AHMED}: "
          "ANC = 3450 - 1.42 AUC)",
          "maximal inhibition of myelopoiesis by cyclophosphamide"),
        P("ec50_cy_my", 0.1, "mg/L", 0.01, 1000.0,
          f"{CAL}well below the Cy Cmax after 300 mg/m2, so Flu/Cy gives grade 3-4 "
          f"cytopenia in nearly every patient (Pan 2021 JCO 39:3340: 100%); {CALREF}",
          "cyclophosphamide EC50 for myelosuppression"),
        P("emax_flu_my", 0.9, "-", 0.0, 1.0,
          "assumption: fludarabine is moderately myelosuppressive",
          "maximal inhibition of myelopoiesis by F-ara-A"),
        P("ec50_flu_my", 0.01, "mg/L", 1e-3, 10.0,
          f"{CAL}a tenth of the F-ara-A Cmax after 30 mg/m2 (see ec50_cy_my); {CALREF}",
          "F-ara-A EC50 for myelosuppression"),
        P("emax_ifng_my", 0.9, "-", 0.0, 1.0,
          "assumption: inflammation-driven myelosuppression after CAR-T (immune effector "
          "cell-associated hematotoxicity, ICAHT: Rejeski et al. 2021 Blood 138:2499, "
          "CAR-HEMATOTOX; Rejeski et al. 2023 Blood 142:865) is mediated in part by "
          "IFN-gamma, which stops myeloid progenitors from dividing and diverts them from "
          "neutrophil development (de Bruin et al. 2013 Blood 121:3578); near-complete at "
          "severe inflammation",
          "maximal inhibition of myelopoiesis by IFN-gamma"),
        P("ec50_ifng_my", 122.683, "pg/mL", 1.0, 1e5,
          f"{CAL}prior range 30-3000 pg/mL (the order of the IFN-gamma that activates "
          "macrophages, ec_ifng); prolonged grade-4 neutropenia follows CRS-level "
          "inflammation (Rejeski 2021); set by grade-4 neutropenia in Hu 2024 (10/10), "
          f"grade 3-4 cytopenia and infection deaths; {CALREF}",
          "IFN-gamma excess over baseline for half-maximal myelosuppression"),
    ],
    name="cd7",
)


#: Physiology and assay constants used to build initial states and observables
#: (not seen by the kernel).
CD7_PHYSIOLOGY = ParameterSet(
    [
        P("blood_volume_ml_per_kg", 70.0, "mL/kg", 40.0, 120.0,
          "standard adult blood volume ~70 mL/kg (Nadler 1962 Surgery 51:224)",
          "blood volume per kg body weight"),
        P("f_blood_lymph", 0.02, "-", 0.001, 0.2,
          "Westermann & Pabst 1992 Clin Investig 70:539: ~2% of lymphocytes circulate",
          "fraction of whole-body T and CAR-T cells in blood"),
        P("f_blood_blast", 0.005, "-", 0.0, 0.5,
          "assumption: few T-ALL blasts circulate at low burden",
          "fraction of blasts in blood"),
        P("t_frac_of_alc", 0.85, "-", 0.1, 1.0,
          "assumption: T and NK cells ~85% of blood lymphocytes (B cells ~10-15%)",
          "share of the lymphocyte count that is T/NK cells"),
        P("cd7neg_t_frac", 0.1, "-", 0.0, 1.0,
          "assumption: ~10% of T cells are naturally CD7-negative, mostly CD4+ memory "
          "(Freiwan 2022 Blood; Pan 2021 JCO)",
          "CD7-negative share of normal T cells at baseline"),
        P("cells_per_cm3", 1e9, "cells/cm3", 1e7, 1e10,
          "standard tumour cellularity ~1e9 cells/cm3 (Del Monte 2009 Cell Cycle 8:505)",
          "cells per cm3 of extramedullary mass"),
        P("genomes_per_ug", 1.5e5, "genomes/ug", 1e5, 2e5,
          "1 ug human genomic DNA ~ 1.5e5 diploid genomes (6.6 pg per diploid cell)",
          "diploid genomes per ug DNA (qPCR denominator)"),
        P("myeloid_to_anc", 1.15, "-", 1.0, 2.0,
          "assumption: monocytes ~15% of the neutrophil count",
          "non-lymphoid nucleated blood cells per neutrophil"),
        P("cell_floor", 1e-6, "cells", 1e-12, 1.0,
          "numerical: an absent population (CAR-T before infusion, no extramedullary "
          "mass) is held at this count so that its logarithm exists; counts below one cell "
          "are reported as zero",
          "floor of log-transformed cell states"),
        P("absent_floor", 1e-250, "cells", 1e-300, 1e-6,
          "numerical: absent populations (CAR-T before infusion, a CD7-negative clone of less "
          "than one cell) start this far below one cell, so that growth of an absent "
          "population (ln-state artefact) cannot reach one cell within any simulated horizon",
          "floor of log-transformed populations that are absent at the start"),
        P("toci_volume_l", 6.4, "L", 1.0, 20.0,
          "assumption: tocilizumab central + peripheral volume ~6.4 L (label)",
          "distribution volume of tocilizumab"),
    ],
    name="cd7 physiology",
)

#: Lymphodepletion pharmacokinetics (typical values; scaled per patient in ``build``).
CD7_LD_PK = ParameterSet(
    [
        P("flu_cl_nonrenal", 4.4, "L/h", 0.1, 50.0, f"{VARELA}", "F-ara-A non-renal clearance"),
        P("flu_cl_renal", 1.7, "L/h", 0.0, 50.0, f"{VARELA} (at CrCl 96 mL/min)",
          "F-ara-A renal clearance at CrCl 96 mL/min"),
        P("flu_v1", 41.2, "L", 1.0, 500.0, f"{VARELA} (per 70 kg)", "F-ara-A central volume"),
        P("flu_v2", 14.5, "L", 1.0, 500.0, f"{VARELA} (per 70 kg)", "F-ara-A peripheral volume 1"),
        P("flu_v3", 10.8, "L", 1.0, 500.0, f"{VARELA} (per 70 kg)", "F-ara-A peripheral volume 2"),
        P("flu_q2", 4.8, "L/h", 0.0, 100.0, f"{VARELA}", "F-ara-A intercompartmental clearance 1"),
        P("flu_q3", 3.6, "L/h", 0.0, 100.0, f"{VARELA}", "F-ara-A intercompartmental clearance 2"),
        P("flu_salt_factor", 0.78, "-", 0.5, 1.0, f"{VARELA}",
          "F-ara-A per mg fludarabine phosphate"),
        P("cy_cl", 5.41, "L/h", 0.1, 100.0, f"{AHMED} (at BSA 1.58 m2)", "cyclophosphamide CL"),
        P("cy_v", 46.5, "L", 1.0, 500.0, f"{AHMED} (at BSA 1.58 m2)", "cyclophosphamide volume"),
        P("cy_bsa_exp", 0.861, "-", 0.0, 2.0, f"{AHMED}", "BSA exponent of Cy CL and V"),
    ],
    name="cd7 lymphodepletion PK",
)

#: Consolidative allogeneic HSCT (``Regimen.hsct_day``): what conditioning and the graft
#: do to the model's cell states on the day of transplant (not seen by the kernel).
CD7_HSCT = ParameterSet(
    [
        P("hsct_blast_log10_kill", 3.0, "log10", 0.0, 8.0,
          "assumption: myeloablative TBI- or busulfan-based conditioning gives a few logs of "
          "leukemia kill (log-kill model of Skipper 1964 Cancer Chemother Rep 35:1); 3 logs "
          "keeps relapse after transplant possible from MRD-positive residual disease",
          "log10 reduction of blasts and extramedullary cells by conditioning"),
        P("hsct_car_survival", 0.0, "-", 0.0, 1.0,
          "assumption: conditioning (with ATG) eliminates CAR-T cells; any survivors would "
          "re-expand on the graft's CD7+ donor T cells, which transplanted patients in the "
          "CD7 CAR-T trials (Pan 2021 JCO 39:3340, Lu 2022 Blood 140:321) did not show",
          "fraction of CAR-T cells surviving conditioning"),
        P("hsct_t_survival", 1e-3, "-", 0.0, 1.0,
          "assumption: myeloablative conditioning with ATG ablates recipient T cells",
          "fraction of recipient normal T cells surviving conditioning"),
        P("hsct_graft_t_per_kg", 2e8, "cells/kg", 0.0, 1e10,
          "assumption: a G-CSF-mobilised peripheral-blood stem-cell graft typically carries "
          "~1-3e8 CD3+ cells/kg; the middle of that range",
          "donor T cells infused with the graft"),
        P("hsct_myeloid_survival", 0.02, "-", 0.0, 1.0,
          "assumption: conditioning leaves ~2% of myeloid precursors, giving neutrophil "
          "engraftment around day +14-21 with the myeloid transit model",
          "fraction of myeloid precursors surviving conditioning"),
        P("hsct_gvl_per_day", 0.05, "1/day", 0.0, 5.0,
          "assumption (calibrated): graft-versus-leukemia kills residual blasts of either CD7 "
          "phenotype faster than relapsed acute leukemia regrows (0.03-0.06/day here), so "
          "relapse after allo-HSCT in remission is the exception (Hu et al. 2024 N Engl J Med "
          "390:1467: 2 relapses of 10 after CD7 CAR-T and haplo-HSCT)",
          "graft-versus-leukemia death rate of blasts after allo-HSCT"),
    ],
    name="cd7 allogeneic HSCT",
)
