"""Constants shared by the fitting tests (a module with a unique name, importable from tests)."""

from pathlib import Path

DATA = Path(__file__).parents[2] / "experiments" / "data"
QPCR_DAYS = (1, 4, 7, 10, 14, 21, 28, 60, 90, 180, 270, 365)
STEIN_TYPICAL = {"Tmax": 9.3, "Cmax": 24000.0, "alpha": 0.16, "beta": 0.0032}
