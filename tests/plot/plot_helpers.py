"""Helpers of the plot tests: deterministic Datasets (closed-form curves, no solver) and
baseline-image comparison.

The synthetic trajectories follow the shapes of a CAR-T course (expansion to a peak on day
~10, biphasic decline; blasts falling by decades then relapsing; an IL-6 pulse) with the
units and long names of :func:`cartsim.simulate`, so the plots see the real contract.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import xarray as xr
import yaml

matplotlib.use("Agg")

BASELINE_DIR = Path(__file__).parent / "baseline"
UPDATE_ENV = "CARTSIM_UPDATE_BASELINES"

UNITS = {
    "car_copies_per_ug": ("copies/ug", "CAR transgene copies per ug genomic DNA of blood (qPCR)"),
    "car_cells_per_ul": ("cells/uL", "CAR-T cells per uL blood (flow)"),
    "marrow_blast_pct": ("%", "marrow blasts (% of nucleated marrow cells)"),
    "blast_cd7neg_pct": ("%", "CD7-negative share of blasts"),
    "t_cd7pos_per_ul": ("cells/uL", "normal CD7+ T/NK cells per uL blood"),
    "t_cd7neg_per_ul": ("cells/uL", "normal CD7- T cells per uL blood"),
    "anc_per_ul": ("cells/uL", "absolute neutrophil count"),
    "il6": ("pg/mL", "interleukin-6 (plasma)"),
    "ifng": ("pg/mL", "interferon-gamma (plasma)"),
    "il10": ("pg/mL", "interleukin-10 (plasma)"),
    "tnfa": ("pg/mL", "tumour necrosis factor alpha (plasma)"),
    "flu_conc": ("mg/L", "F-ara-A plasma concentration"),
    "cy_conc": ("mg/L", "cyclophosphamide plasma concentration"),
}
REGIMEN = {"flu_mg_m2": 30.0, "cy_mg_m2": 300.0, "ld_days": [-5.0, -4.0, -3.0],
           "car_dose_per_kg": 1e6, "car_days": [0.0], "car_fractions": [1.0]}


def synthetic_dataset(n_patients: int = 3, t_end: float = 120.0, dt: float = 0.5) -> xr.Dataset:
    """Trajectories of ``n_patients`` (scaled copies of one course), dims patient x time."""
    t = np.arange(-5.0, t_end + dt / 2, dt)
    k = np.arange(n_patients)[:, None]
    s = 1.0 + 0.5 * k  # patient scale
    tp = np.clip(t, 0, None)[None, :]
    car = 5e4 * s * (np.exp(-((np.log1p(tp) - np.log(11.0)) ** 2) / 0.25) + 0.05 * np.exp(
        -tp / 200.0)) * (t >= 0) + 1e-3
    blasts = np.clip(40.0 * np.exp(-0.6 * np.clip(tp - 3, 0, None)) +
                     1e-4 * np.exp(0.05 * s * tp), 1e-8, 95.0) * np.ones_like(car)
    cd7neg = 100.0 * (1e-4 * np.exp(0.05 * s * tp)) / blasts
    il6 = 5.0 + 400.0 * s * np.exp(-((tp - 8.0) ** 2) / 12.0)
    data = {
        "car_copies_per_ug": car,
        "car_cells_per_ul": car / 100.0,
        "marrow_blast_pct": blasts,
        "blast_cd7neg_pct": np.clip(cd7neg, 0, 100),
        "t_cd7pos_per_ul": 800.0 * np.exp(-0.3 * tp) * np.ones_like(car) + 1e-3,
        "t_cd7neg_per_ul": 200.0 * (1 - 0.9 * np.exp(-0.05 * tp)) * np.ones_like(car),
        "anc_per_ul": 2500.0 - 2000.0 * np.exp(-((tp - 7.0) ** 2) / 30.0) * np.ones_like(car),
        "il6": il6,
        "ifng": 2.0 + 1.5 * il6,
        "il10": 3.0 + 0.4 * il6,
        "tnfa": 8.0 + 0.1 * il6,
        "flu_conc": np.where((t >= -5) & (t < -2), 0.6, 0.6 * np.exp(-1.5 * (t + 2)))[None, :]
        * np.ones((n_patients, 1)) * (t < 5),
        "cy_conc": np.where((t >= -5) & (t < -2), 20.0 * np.exp(-3 * ((t + 5) % 1)), 0.0)[None, :]
        * np.ones((n_patients, 1)),
    }
    config = yaml.safe_dump({"patient": {"marrow_blast_pct": 40.0, "weight_kg": 70.0,
                                         "crcl_ml_min": 96.0, "cd7neg_blast_fraction": 1e-6},
                             "regimen": REGIMEN, "product": {"name": "nanobody"}})
    return xr.Dataset(
        {name: (("patient", "time"), np.asarray(v, dtype=float),
                {"units": UNITS[name][0], "long_name": UNITS[name][1]})
         for name, v in data.items()},
        coords={"patient": np.arange(n_patients), "time": ("time", t, {"units": "day"})},
        attrs={"config": config, "seed": 0})


def synthetic_endpoints(n: int = 24, seed: int = 3) -> xr.Dataset:
    """Endpoints of ``n`` patients with the variables the swimmer and KM plots read."""
    rng = np.random.default_rng(seed)
    follow = 730.0
    best = rng.choice([2, 1, 0], size=n, p=[0.6, 0.25, 0.15])
    resp_day = np.where(best > 0, rng.integers(7, 30, n), np.nan).astype(float)
    relapse = (best > 0) & (rng.random(n) < 0.35)
    relapse_day = np.where(relapse, resp_day + rng.integers(60, 400, n), np.nan)
    progression_day = np.where(best == 0, rng.integers(20, 80, n), np.nan).astype(float)
    death = rng.random(n) < 0.4
    first_event = np.fmin(relapse_day, progression_day)
    death_day = np.where(death, np.fmin(np.nan_to_num(first_event, nan=300) +
                                        rng.integers(20, 200, n), follow), np.nan)
    os_day = np.where(death, death_day, follow)
    pfs_day = np.fmin(np.fmin(first_event, os_day), follow)
    pfs_event = np.isfinite(first_event) | death
    data = {
        "evaluable": np.ones(n, bool), "best_response": best, "response_day": resp_day,
        "relapse": relapse, "relapse_day": relapse_day,
        "relapse_cd7neg": relapse & (rng.random(n) < 0.6), "progression_day": progression_day,
        "death": death, "death_day": death_day, "os_day": os_day, "os_event": death,
        "pfs_day": pfs_day, "pfs_event": pfs_event, "response_d28": best,
        "mrd_flow_neg_d28": best == 2, "crs_grade": rng.integers(0, 4, n),
        "icans_grade": rng.integers(0, 2, n), "cytopenia_g34": np.ones(n, bool),
    }
    return xr.Dataset({k: ("patient", np.asarray(v)) for k, v in data.items()},
                      coords={"patient": np.arange(n)})


@contextmanager
def deterministic_style():
    """Fixed style, font and hinting so that baseline images are reproducible."""
    import matplotlib as mpl
    import matplotlib.style

    with matplotlib.style.context("default"), mpl.rc_context({
            "font.family": "DejaVu Sans", "text.hinting": "none",
            "svg.hashsalt": "cartsim", "figure.dpi": 100, "savefig.dpi": 60,
            "path.simplify": False}):
        yield


def check_baseline(fig, name: str, tmp_path, tol: float = 6.0) -> None:
    """Compare ``fig`` with ``baseline/<name>.png`` (RMS tolerance ``tol``, 0-255 scale).

    Set ``CARTSIM_UPDATE_BASELINES=1`` to (re)write the baseline instead, after looking at it.
    """
    from matplotlib.testing.compare import compare_images

    actual = tmp_path / f"{name}.png"
    fig.savefig(actual, dpi=60)
    expected = BASELINE_DIR / f"{name}.png"
    if os.environ.get(UPDATE_ENV):
        BASELINE_DIR.mkdir(exist_ok=True)
        expected.write_bytes(actual.read_bytes())
        pytest.skip(f"baseline {expected.name} written")
    assert expected.exists(), (f"no baseline {expected}; run with {UPDATE_ENV}=1 to create "
                               "it, look at it, and commit it")
    result = compare_images(str(expected), str(actual), tol=tol)
    assert result is None, result
