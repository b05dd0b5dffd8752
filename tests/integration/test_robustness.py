"""A varied virtual cohort solves without failure, and failures never corrupt a batch.

Log-normal draws (CV ~60%) on ten kinetic parameters, wide covariates (blast
burden 0-95%, CD7- fraction 1e-8..1e-1, weight 30-110 kg, CrCl 20-140), any residual
CD7 on the product, doses 3e4..3e7 cells/kg, with or without Flu/Cy and an IL-6 rule.
"""

import numpy as np
import pytest

import cartsim
from cartsim.parameters.cd7 import CD7_PARAMETERS

NAMES = ["rho_max", "k_kill", "delta_e", "delta_m", "k_ag", "k_em", "s_il6", "k_switch",
         "theta_kill", "r_t"]


def _cohort(n, seed):
    rng = np.random.default_rng(seed)
    scs = []
    for _ in range(n):
        params = {}
        for name in NAMES:
            p = CD7_PARAMETERS[name]
            params[name] = float(np.clip(p.value * np.exp(rng.normal(0, 0.6)), p.lower, p.upper))
        scs.append(cartsim.Scenario(
            model=cartsim.ModelConfig(params=params),
            disease=cartsim.Disease(em_volume_cm3=float(rng.choice([0, 30, 200])),
                                    blast_growth_per_day=float(rng.uniform(0.01, 0.12)),
                                    cd7_density=float(rng.uniform(0.3, 1.5))),
            patient=cartsim.Patient(marrow_blast_pct=float(rng.uniform(0, 95)),
                                    weight_kg=float(rng.uniform(30, 110)),
                                    crcl_ml_min=float(rng.uniform(20, 140)),
                                    cd7neg_blast_fraction=float(10 ** rng.uniform(-8, -1)),
                                    lymphocytes_per_ul=float(rng.uniform(100, 3000))),
            product=cartsim.Product(residual_cd7=float(rng.uniform(0, 1)),
                                    donor_derived=bool(rng.integers(2))),
            regimen=cartsim.Regimen(car_dose_per_kg=float(10 ** rng.uniform(4.5, 7.5)),
                                    cy_mg_m2=float(rng.choice([0, 250, 500, 1000])),
                                    flu_mg_m2=float(rng.choice([0, 25, 30])),
                                    toci_il6_threshold=float(rng.choice([200, 1e9])))))
    return scs


@pytest.mark.parametrize("method", ["rodas4", "bdf", "dp5_bdf"])
def test_varied_cohort_solves_and_stays_finite(method):
    ds = cartsim.simulate(_cohort(120, seed=7), method=method)
    assert set(np.unique(ds["status"].values)) == {0}
    cells = ds[["car_eff", "car_mem", "car_exh", "blast_cd7pos", "blast_cd7neg", "t_cd7pos",
                "t_cd7neg"]].to_array()
    assert np.isfinite(cells).all() and (cells > 0).all()
    # the T-cell niche bounds CAR-T expansion even for unedited products
    assert float(ds["car_total"].max()) < 1e14


def test_failed_patient_does_not_corrupt_others():
    scs = _cohort(6, seed=3)
    # an absurd self-stimulating product: residual CD7 1 and a huge niche
    scs[2].product.residual_cd7 = 1.0
    scs[2].model.params.update({"car_niche": 1e14, "rho_max": 5.0, "w_self": 1.0,
                                "delta_e": 0.01, "k_kill": 0.01})
    ds = cartsim.simulate(scs, method="rodas4")
    status = ds["status"].values
    assert set(status) <= {0, 1, 2, 3, 4}
    for i in (0, 1, 3, 4, 5):
        assert status[i] == 0
        alone = cartsim.simulate(scs[i], method="rodas4")
        np.testing.assert_array_equal(alone["car_eff"].values[0], ds["car_eff"].values[i])
