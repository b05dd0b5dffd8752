"""Synthetic simulation Datasets with hand-made trajectories, for closed-form endpoint checks."""

import numpy as np
import pytest
import xarray as xr

from cartsim.clinical import DeathModel, EndpointSettings

UNITS = {"car_copies_per_ug": "copies/ug", "car_cells_per_ul": "cells/uL",
         "marrow_blast_pct": "%", "blast_cd7neg_pct": "%", "em_volume_cm3": "cm3",
         "t_cd7pos_per_ul": "cells/uL", "anc_per_ul": "cells/uL", "il6": "pg/mL",
         "ifng": "pg/mL", "il10": "pg/mL", "tnfa": "pg/mL", "flu_auc": "mg h/L"}

# A quiet patient: no CAR-T signal, refractory but stable marrow, normal counts, baseline
# cytokines (nothing crosses any default threshold except the 40% blasts).
QUIET = {"car_copies_per_ug": 0.0, "car_cells_per_ul": 0.0, "marrow_blast_pct": 40.0,
         "blast_cd7neg_pct": 0.0, "em_volume_cm3": 0.0, "t_cd7pos_per_ul": 600.0,
         "anc_per_ul": 2500.0, "il6": 5.0, "ifng": 10.0, "il10": 5.0, "tnfa": 8.0,
         "flu_auc": 20.0}

NO_DEATH = EndpointSettings(death=DeathModel(
    leukemia_hazard_max_per_day=0.0, neutropenia_hazard_per_day=0.0,
    aplasia_hazard_per_day=0.0, crs_hazard_per_day=0.0, trm_1y=0.0))
"""Default endpoint settings with every death hazard off (trajectory endpoints in isolation)."""


def build_dataset(n_patient=1, t=None, status=None, seed=0, hsct_day=None, **trajectories):
    """A Dataset in the layout of ``cartsim.simulate``.

    Each trajectory is a number, a function of the time vector, or an array of shape
    (time,) or (patient, time); unspecified observables take the QUIET values.
    """
    t = np.arange(-5.0, 181.0) if t is None else np.asarray(t, dtype=float)
    data = {}
    for name, unit in UNITS.items():
        spec = trajectories.pop(name, QUIET[name])
        value = spec(t) if callable(spec) else spec
        arr = np.broadcast_to(np.asarray(value, dtype=float), (n_patient, t.size)).copy()
        data[name] = (("patient", "time"), arr, {"units": unit, "long_name": name})
    if trajectories:
        raise TypeError(f"unknown trajectories {sorted(trajectories)}")
    status = np.zeros(n_patient, dtype=np.int64) if status is None else np.asarray(status)
    data["status"] = (("patient",), status, {"units": "1", "long_name": "solver status"})
    data["status_name"] = (("patient",), np.where(status == 0, "success", "failed"),
                           {"long_name": "solver status"})
    if hsct_day is not None:
        data["hsct_day"] = (("patient",), np.broadcast_to(np.asarray(hsct_day, float),
                                                          (n_patient,)).copy(),
                            {"units": "day", "long_name": "allo-HSCT day"})
    coords = {"time": ("time", t, {"units": "day"}), "patient": np.arange(n_patient)}
    return xr.Dataset(data, coords=coords, attrs={"seed": seed, "model": "cd7",
                                                  "config": "{}", "cartsim_version": "test"})


@pytest.fixture
def make_ds():
    return build_dataset


@pytest.fixture
def no_death():
    return NO_DEATH
