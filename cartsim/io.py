"""Writing results: atomic netCDF and text files.

Every file cartsim writes goes through a temporary file in the same directory
and ``os.replace``, so a reader never sees a half-written file and an
interrupted run leaves nothing under the final name.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_netcdf", "write_text"]


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_netcdf(ds, path) -> Path:
    """Write ``ds`` to ``path`` (netCDF4 via h5netcdf) atomically; returns the absolute path."""
    path = Path(path).resolve()
    tmp = _tmp(path)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(text: str, path) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the absolute path."""
    path = Path(path).resolve()
    tmp = _tmp(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
