"""Chunk files of a resumable sweep: atomic writes, a spec hash, and refusal to mix sweeps.

A sweep's chunk directory holds

* ``sweep_spec.json``: the hash of everything that determines the result (base scenario,
  axes, population, endpoints, endpoint settings, seed, chunk size, cartsim version) and
  the description it was computed from;
* ``chunk_000000.nc``, ...: one completed chunk each, written to a temporary name and
  renamed (:func:`cartsim.io.write_netcdf`), so a file under its final name is complete.

A chunk file is used only if it opens, carries the same hash and holds exactly the points
of its chunk; anything else (a corrupt or foreign file) is recomputed. A directory whose
``sweep_spec.json`` has another hash is refused: results of two sweeps are never mixed.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from cartsim.io import write_netcdf, write_text
from cartsim.scenario import ScenarioError

__all__ = ["ChunkStore", "MissingChunksError", "SweepMismatchError", "chunk_path",
           "spec_hash", "span_text"]

SPEC_FILE = "sweep_spec.json"


class SweepMismatchError(ScenarioError):
    """A chunk directory belongs to a different sweep."""


class MissingChunksError(ScenarioError):
    """Chunks a run was asked to load only (a sharded run's gather) are not in the store.

    Attributes
    ----------
    chunks : the chunk numbers, in order.
    """

    def __init__(self, chunks, directory) -> None:
        self.chunks = [int(k) for k in chunks]
        self.directory = Path(directory)
        super().__init__(f"chunks {span_text(self.chunks)} are missing from {self.directory} "
                         "(or unreadable, or of another sweep)")


def span_text(numbers) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``'0-2, 5, 7-8'`` (sorted, runs of consecutive numbers)."""
    numbers = sorted(int(k) for k in numbers)
    runs, first = [], None
    for i, k in enumerate(numbers):
        if first is None:
            first = k
        if i + 1 == len(numbers) or numbers[i + 1] != k + 1:
            runs.append(str(k) if k == first else f"{first}-{k}")
            first = None
    return ", ".join(runs)


def chunk_path(directory, k: int, prefix: str = "chunk") -> Path:
    """``<directory>/<prefix>_<k>.nc`` (zero-padded to 6 digits: listed in order)."""
    return Path(directory) / f"{prefix}_{k:06d}.nc"


def spec_hash(description: dict) -> str:
    """SHA-256 of a JSON description (sorted keys), hex."""
    text = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class ChunkStore:
    """Chunk files of one sweep in one directory (see the module docstring).

    Parameters
    ----------
    directory : where the chunks live (created if needed).
    description : what determines the result (JSON-serialisable); its hash names the sweep.
    """

    def __init__(self, directory, description: dict) -> None:
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.hash = spec_hash(description)
        meta = self.directory / SPEC_FILE
        if meta.is_file():
            try:
                old = json.loads(meta.read_text())["hash"]
            except (ValueError, KeyError, OSError):
                old = None
            if old != self.hash:
                raise SweepMismatchError(
                    f"sweep.resume_dir={str(self.directory)!r} holds chunks of a different "
                    f"sweep (spec hash {str(old)[:12]}..., this sweep {self.hash[:12]}...): "
                    "results of two sweeps are never mixed; delete that directory or set "
                    "sweep.resume_dir to another one")
        else:
            write_text(json.dumps({"hash": self.hash, "description": description},
                                  indent=1, sort_keys=True, default=str), meta)

    def path(self, k: int, prefix: str = "chunk") -> Path:
        return chunk_path(self.directory, k, prefix)

    def load(self, k: int, points: np.ndarray, then: str = "recomputing it"
             ) -> xr.Dataset | None:
        """Chunk ``k`` if a complete, matching file exists; else None (warns if unusable,
        saying ``then``: what the caller does instead)."""
        path = self.path(k)
        if not path.is_file():
            return None
        try:
            with xr.open_dataset(path, engine="h5netcdf") as ds:
                ds = ds.load()
        except Exception as exc:  # unreadable: recompute rather than trust it
            warnings.warn(f"sweep chunk {path} is unreadable ({exc}); {then}",
                          stacklevel=2)
            return None
        same = (ds.attrs.get("spec_hash") == self.hash and "point" in ds.dims
                and np.array_equal(ds["point"].values, points))
        if not same:
            warnings.warn(f"sweep chunk {path} does not match this sweep (hash or points); "
                          f"{then}", stacklevel=2)
            return None
        ds.attrs.pop("chunk", None)  # bookkeeping of the file, not of the result
        return ds

    def save(self, k: int, ds: xr.Dataset) -> Path:
        ds = ds.copy()
        ds.attrs["spec_hash"] = self.hash
        ds.attrs["chunk"] = int(k)
        return write_netcdf(ds, self.path(k))
