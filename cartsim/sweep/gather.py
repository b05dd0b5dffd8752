"""Gather a Hydra multirun into one Dataset, the overridden values as coordinates.

``cartsim -m product=nanobody,ns7car,ko regimen=flu_cy_low,flu_cy_high`` runs one job per
combination, each writing into its own directory ``<sweep dir>/<job number>/`` beside
Hydra's record of the job (``.hydra/overrides.yaml``, ``.hydra/config.yaml``). Then::

    cartsim gather multirun/2026-01-01/12-00-00            # -> gathered.nc in that dir
    cartsim gather DIR --format zarr --out results.zarr     # zarr for large results

or :func:`gather` from Python, or automatically at the end of the multirun with the Hydra
callback :class:`cartsim.sweep.callback.GatherCallback` (``+hydra/callbacks=gather``).

Which jobs were expected is read from ``<sweep dir>/multirun.yaml`` (the sweep overrides,
e.g. ``product=nanobody,ns7car,ko``); when the expected jobs form a full grid (Hydra's basic
sweeper), the result has one dim per swept key with the values in the order given,
otherwise a ``job`` dim with the values as coordinates. ``job_status`` reports every
expected job: 0 gathered, -1 missing (no result file: not run, crashed or still running),
-2 unreadable result file. A job's result file is the one its task writes
(``output_file`` for ``simulate``, ``trial_endpoints.nc``, ``sweep.nc``,
``sensitivity.nc``), or ``--file NAME``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

__all__ = ["JOB_GATHERED", "JOB_MISSING", "JOB_UNREADABLE", "gather", "main", "write_gathered"]

JOB_GATHERED, JOB_MISSING, JOB_UNREADABLE = 0, -1, -2

TASK_FILES = {"trial": "trial_endpoints.nc", "sweep": "sweep.nc",
              "sensitivity": "sensitivity.nc"}
"""Result file of each task (``simulate`` writes its ``output_file``)."""

EXIT_INCOMPLETE = 3
"""Exit code of ``cartsim gather`` when some expected jobs are missing or unreadable."""


def _parse(text: str):
    """(key, value or list of values, is_sweep) of one override string, via Hydra's parser."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    ov = OverridesParser.create().parse_override(text)
    key = ov.get_key_element().lstrip("+~")
    if ov.is_sweep_override():
        if not (ov.is_choice_sweep() or ov.is_range_sweep()):
            raise ValueError(f"cannot list the values of sweep override {text!r}")
        return key, [_plain(v) for v in ov.sweep_iterator()], True
    return key, _plain(ov.value()), False


def _plain(v):
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    return str(v)


def _job_dirs(sweep_dir: Path) -> list[Path]:
    found = sorted({p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml")
                    if p.parent.parent != sweep_dir},
                   key=lambda p: [int(s) if s.isdigit() else s for s in p.relative_to(
                       sweep_dir).parts])
    return found


def _expected(sweep_dir: Path) -> tuple[list[str], list[list]] | None:
    """Swept keys and their values from ``multirun.yaml`` (None if absent)."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return None
    cfg = yaml.safe_load(path.read_text()) or {}
    task = (((cfg.get("hydra") or {}).get("overrides") or {}).get("task")) or []
    keys, values = [], []
    for text in task:
        try:
            key, vals, sweep = _parse(str(text))
        except Exception:
            return None
        if sweep:
            keys.append(key)
            values.append(vals)
    return keys, values


def _result_file(job: Path, file: str | None) -> Path:
    if file:
        return job / file
    cfg_path = job / ".hydra" / "config.yaml"
    task, out = "simulate", "simulation.nc"
    if cfg_path.is_file():
        cfg = yaml.safe_load(cfg_path.read_text()) or {}
        task, out = cfg.get("task", task), cfg.get("output_file", out)
    return job / TASK_FILES.get(task, out)


def _coord_attrs(key: str) -> dict:
    from cartsim.sweep.axes import FIELD_UNITS, GROUPS

    if key in FIELD_UNITS:
        units, long_name = FIELD_UNITS[key]
        return {"units": units, "long_name": long_name}
    if key in GROUPS:
        return {"units": "1", "long_name": f"{key} option (conf/{key}/)"}
    return {"long_name": f"overridden value of {key}"}


def gather(sweep_dir, *, file: str | None = None) -> xr.Dataset:
    """Gather every job of a Hydra multirun directory into one Dataset.

    Parameters
    ----------
    sweep_dir : the multirun directory (``hydra.sweep.dir``).
    file : result file name inside each job directory (default: the file its task writes).

    Returns
    -------
    xarray.Dataset
        The jobs' variables with the swept keys as dims (full grid) or as coordinates along
        ``job``; ``job_status`` and ``job_dir`` per job; attrs ``n_jobs``, ``n_missing``,
        ``n_unreadable``, ``missing_jobs`` (JSON) and the first gathered job's attributes.

    Raises
    ------
    FileNotFoundError
        ``sweep_dir`` has no job directories and no ``multirun.yaml``.
    """
    sweep_dir = Path(sweep_dir).resolve()
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"cartsim gather: {str(sweep_dir)!r} is not a directory")
    jobs = _job_dirs(sweep_dir)
    expected = _expected(sweep_dir)
    if not jobs and expected is None:
        raise FileNotFoundError(f"cartsim gather: {str(sweep_dir)!r} holds no Hydra job "
                                "(no */.hydra/overrides.yaml) and no multirun.yaml")
    records = []
    for job in jobs:
        ovs = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or []
        vals = dict(_parse(str(t))[:2] for t in ovs)
        path = _result_file(job, file)
        ds, status = None, JOB_MISSING
        if path.is_file():
            try:
                with xr.open_dataset(path, engine="h5netcdf") as f:
                    ds = f.load()
                status = JOB_GATHERED
            except Exception:
                status = JOB_UNREADABLE
        records.append({"dir": str(job.relative_to(sweep_dir)), "values": vals, "ds": ds,
                        "status": status})
    if expected is not None and expected[0]:
        keys, levels = expected
    else:
        all_keys = sorted({k for r in records for k in r["values"]})
        keys = [k for k in all_keys
                if len({repr(r["values"].get(k)) for r in records}) > 1]
        levels = [_unique([r["values"].get(k) for r in records]) for k in keys]
    combos = list(itertools.product(*levels))
    by_combo = {}
    for r in records:
        c = tuple(r["values"].get(k) for k in keys)
        by_combo.setdefault(c, r)
    grid = len(by_combo) <= len(combos) and all(c in set(combos) for c in by_combo)
    if not grid:
        combos = list(by_combo)
    jobs_out = [by_combo.get(c, {"dir": "", "values": dict(zip(keys, c)), "ds": None,
                                 "status": JOB_MISSING}) for c in combos]
    ds = _assemble(jobs_out, keys, levels if grid else None, combos)
    missing = [{"overrides": {k: r["values"].get(k) for k in keys}, "dir": r["dir"],
                "status": "missing" if r["status"] == JOB_MISSING else "unreadable"}
               for r in jobs_out if r["status"] != JOB_GATHERED]
    ds.attrs.update({
        "title": "cartsim gathered multirun",
        "sweep_dir": str(sweep_dir),
        "swept_keys": json.dumps(keys),
        "n_jobs": len(jobs_out),
        "n_missing": sum(r["status"] == JOB_MISSING for r in jobs_out),
        "n_unreadable": sum(r["status"] == JOB_UNREADABLE for r in jobs_out),
        "missing_jobs": json.dumps(missing),
        "gathered": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })
    return ds


def _unique(values: list) -> list:
    out: list = []
    for v in values:
        if not any(repr(v) == repr(o) for o in out):
            out.append(v)
    return out


def _fill(dtype):
    kind = np.dtype(dtype).kind
    return False if kind == "b" else (-1 if kind in "iu" else ("" if kind in "US" else np.nan))


def _assemble(jobs: list[dict], keys: list[str], levels, combos) -> xr.Dataset:
    """Place every gathered job's Dataset at its coordinates (grid dims or ``job``)."""
    done = [j for j in jobs if j["ds"] is not None]
    if levels is not None:
        dims, shape = tuple(keys), tuple(len(v) for v in levels)
        coords = {k: (k, np.asarray(v), _coord_attrs(k)) for k, v in zip(keys, levels)}
    else:
        dims, shape = ("job",), (len(jobs),)
        coords = {"job": ("job", np.arange(len(jobs)), {"long_name": "job index"})}
        for i, k in enumerate(keys):
            coords[k] = ("job", np.asarray([c[i] for c in combos]), _coord_attrs(k))
    status = np.array([j["status"] for j in jobs], dtype=np.int64).reshape(shape)
    out = {"job_status": (dims, status, {"units": "1", "long_name": "job status: 0 gathered, "
                                         "-1 missing (no result file), -2 unreadable file"}),
           "job_dir": (dims, np.array([j["dir"] for j in jobs], dtype=str).reshape(shape),
                       {"long_name": "job directory relative to the sweep dir"})}
    if not done:
        return xr.Dataset(out, coords=coords)
    try:
        aligned = xr.align(*[j["ds"] for j in done], join="exact")
    except ValueError as exc:
        raise ValueError("cartsim gather: the jobs' results have different coordinates "
                         f"(e.g. output grids), so they cannot share one Dataset: {exc}") \
            from exc
    first = aligned[0]
    pos = [jobs.index(j) for j in done]
    for name, da in first.data_vars.items():
        arr = np.full((len(jobs), *da.shape), _fill(da.dtype), dtype=da.dtype)
        for p, d in zip(pos, aligned):
            if name in d:
                arr[p] = d[name].values
        out[name] = (dims + da.dims, arr.reshape(shape + da.shape), da.attrs)
    for name, c in first.coords.items():
        if name not in coords:
            coords[name] = c
    attrs = dict(first.attrs)
    attrs["job_attrs_note"] = ("attributes (config, seed, ...) of the first gathered job; the "
                               "jobs differ by the swept keys, which are the coordinates")
    return xr.Dataset(out, coords=coords, attrs=attrs)


def write_gathered(ds: xr.Dataset, path, fmt: str = "netcdf") -> Path:
    """Write atomically: netCDF (``write_netcdf``) or a zarr v2 store (temp dir, then rename).

    Zarr format 2 with consolidated metadata: readable by every zarr implementation
    (format 3 has no specification yet for fixed-length strings, e.g. option names)."""
    from cartsim.io import write_netcdf

    path = Path(path).resolve()
    if fmt == "netcdf":
        return write_netcdf(ds, path)
    if fmt != "zarr":
        raise ValueError(f"format={fmt!r} is not accepted: expected netcdf or zarr")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        ds.to_zarr(tmp, mode="w", zarr_format=2, consolidated=True)
        if path.exists():
            old = path.with_name(f".{path.name}.{os.getpid()}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def gather_and_write(sweep_dir, *, file: str | None = None, fmt: str = "netcdf",
                     out=None) -> tuple[xr.Dataset, Path]:
    """:func:`gather` then :func:`write_gathered` (default ``<sweep_dir>/gathered.nc|.zarr``)."""
    ds = gather(sweep_dir, file=file)
    out = Path(out) if out else Path(sweep_dir) / ("gathered.zarr" if fmt == "zarr"
                                                   else "gathered.nc")
    return ds, write_gathered(ds, out, fmt)


def summary_line(ds: xr.Dataset) -> str:
    """One line: jobs gathered, missing, unreadable."""
    n = ds.attrs["n_jobs"]
    bad = ds.attrs["n_missing"] + ds.attrs["n_unreadable"]
    return (f"{n - bad}/{n} jobs gathered, {ds.attrs['n_missing']} missing, "
            f"{ds.attrs['n_unreadable']} unreadable; swept: "
            + ", ".join(json.loads(ds.attrs["swept_keys"])))


def main(argv=None) -> int:
    """``cartsim gather DIR [--file NAME] [--format netcdf|zarr] [--out PATH]``.

    Exit code 0 when every expected job was gathered, 3 when some are missing or
    unreadable (the file is still written, reporting them), 2 for a usage error.
    """
    parser = argparse.ArgumentParser(
        prog="cartsim gather",
        description="Gather a Hydra multirun directory into one Dataset with the overridden "
                    "values as coordinates.")
    parser.add_argument("sweep_dir", help="the multirun directory (hydra.sweep.dir)")
    parser.add_argument("--file", default=None, help="result file in each job dir (default: "
                        "the file the job's task writes)")
    parser.add_argument("--format", choices=("netcdf", "zarr"), default="netcdf",
                        help="netcdf (default) or zarr (large results)")
    parser.add_argument("--out", default=None,
                        help="output path (default: <DIR>/gathered.nc or gathered.zarr)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        ds, path = gather_and_write(args.sweep_dir, file=args.file, fmt=args.format,
                                    out=args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"cartsim: error: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"cartsim: wrote {path}", flush=True)
    print(f"cartsim: {summary_line(ds)}", flush=True)
    for m in json.loads(ds.attrs["missing_jobs"]):
        print(f"cartsim: {m['status']} job: {m['overrides']} {m['dir']}", file=sys.stderr,
              flush=True)
    return 0 if ds.attrs["n_missing"] + ds.attrs["n_unreadable"] == 0 else EXIT_INCOMPLETE
