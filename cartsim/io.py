"""Writing results: atomic netCDF and text files.

Every file cartsim writes goes through a temporary file in the same directory
and ``os.replace``, so a reader never sees a half-written file and an
interrupted run leaves nothing under the final name.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_netcdf", "write_text"]


def _atomic(path, write) -> Path:
    """Call ``write(tmp)`` on a temporary name beside ``path``, then rename it to ``path``:
    a reader never sees a partial file. Returns the absolute path."""
    path = Path(path).resolve()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_netcdf(ds, path) -> Path:
    """Write ``ds`` to ``path`` (netCDF4 via h5netcdf) atomically; returns the absolute path."""
    return _atomic(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))


def write_text(text: str, path) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the absolute path."""
    return _atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
