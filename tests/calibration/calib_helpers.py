"""Small synthetic targets and design stores for the calibration tests (no simulation)."""

import math

import numpy as np
import pandas as pd

from cartsim.calibration.targets import km, median, rate


def toy_targets():
    """Three trials, each with a rate, one with a median and one with a KM landmark."""
    return (
        rate("response", "A", "exp_a", "rate_response_d28", 9, 10, "toy"),
        median("peak", "A", "exp_a", "median_cmax_qpcr", 100.0, 10.0, 1000.0, 20, "toy"),
        rate("crs", "B", "exp_b", "rate_crs_any", 5, 10, "toy"),
        km("os", "B", "exp_b", "km_os", 12, 0.5, 20, "toy", ci=(0.3, 0.7)),
        rate("relapse", "C", "exp_c", "rate_relapse", 2, 10, "toy"),
    )


def store_frame(targets, values, params=("a", "b")):
    """A design-store DataFrame: ``values`` is (points, targets) of simulated figures."""
    values = np.asarray(values, dtype=float)
    rows = []
    for i, v in enumerate(values):
        row = {"id": i, "source": "design", "status": "ok"}
        row.update({p: 1.0 + i for p in params})
        for t, x in zip(targets, v):
            row[t.key] = x
            row[t.key + "#m"] = 0 if math.isnan(x) else 1000
        rows.append(row)
    return pd.DataFrame(rows)
