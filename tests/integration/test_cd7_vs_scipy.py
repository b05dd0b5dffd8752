"""The whole cd7 model through cartsim's compiled solvers agrees with SciPy's Radau.

Reference: ``scipy.integrate.solve_ivp(method="Radau", rtol=1e-10)`` integrated
segment by segment between the same dose events (cartsim.solvers.reference).
Agreement: 1e-5 relative on every state at every output time, with an absolute
floor per state (cells: 1e-3 cells; drug amounts, cytokines, levels: 1e-7 of
their unit), across the lymphodepletion infusions and the CAR-T bolus.
"""

import numpy as np
import pytest

import cartsim
from cartsim.models import cd7_kernel as K
from cartsim.models.cd7 import Cd7Model
from cartsim.solvers.reference import solve_reference

SCENARIOS = {
    "default": cartsim.Scenario(),
    "tlbl_split_dose_toci": cartsim.Scenario(
        disease=cartsim.Disease(name="tlbl", em_volume_cm3=50.0, blast_growth_per_day=0.03),
        patient=cartsim.Patient(marrow_blast_pct=10.0, cd7neg_blast_fraction=1e-3),
        regimen=cartsim.Regimen(car_days=[0.0, 3.0], car_fractions=[0.3, 0.7],
                                toci_days=[6.0], steroid_days=[7.0], cy_mg_m2=500.0),
        product=cartsim.Product(name="ko", residual_cd7=0.0, donor_derived=True),
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.parametrize("method", ["rodas4", "dp5", "bdf", "dp5_bdf"])
def test_compiled_solver_matches_radau(name, method):
    sc = SCENARIOS[name]
    sc.solver.rtol = {"rodas4": 1e-10, "dp5": 1e-11, "bdf": 1e-10, "dp5_bdf": 1e-10}[method]
    ds = cartsim.simulate(sc, method=method).isel(patient=0)
    assert int(ds["status"]) == 0
    model = Cd7Model()
    pr = model.build(sc)
    t = ds.time.values
    ref = model.to_linear(solve_reference(K.rhs, pr.y0, pr.p, t, pr.t0, pr.events,
                                          model.log_mask, method="Radau", rtol=1e-10,
                                          atol=1e-12))
    floor = np.where(model.log_mask, 1e-3, 1e-7)
    for i, st in enumerate(model.states):
        got = ds[st.name].values
        err = np.abs(got - ref[:, i]) / (np.abs(ref[:, i]) + floor[i] / 1e-5)
        worst = int(np.argmax(err))
        assert err[worst] < 1e-5, (
            f"{st.name} at day {t[worst]}: cartsim {got[worst]:.8g} vs Radau {ref[worst, i]:.8g}")
