"""The trial report (what ``cartsim trial`` writes); implemented in :mod:`cartsim.reporting`.

This module keeps the short import path ``cartsim.report``.
"""

from __future__ import annotations

from cartsim.reporting import (
    SECTIONS,
    format_trial_summary,
    survival_curves,
    trial_summary,
    write_trial_report,
)

__all__ = ["SECTIONS", "format_trial_summary", "survival_curves", "trial_summary",
           "write_trial_report"]
