"""Options of ``cartsim task=sweep`` (``conf/sweep/``) and ``task=sensitivity`` (``conf/sensitivity/``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SensitivityOptions", "SweepSpec"]


@dataclass
class SweepSpec:
    """What ``cartsim task=sweep`` varies and keeps."""


@dataclass
class SensitivityOptions:
    """What ``cartsim task=sensitivity`` analyses."""
