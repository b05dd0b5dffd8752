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

Memory is bounded by design: the jobs' files are opened lazily and copied one job at a
time, a variable in slabs of at most 64 MiB, into the output file (netCDF or zarr, written
to a temporary name and renamed; :mod:`cartsim.sweep.gather_store`). A directory that is
not one multirun (an ``outputs/`` folder of single runs, a folder of several multiruns) is
refused with a one-line error saying what it holds.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

from cartsim.sweep.gather_store import (
    JOB_GATHERED,
    JOB_MISSING,
    JOB_UNREADABLE,
    Layout,
    open_job,
    stream,
)

__all__ = ["JOB_GATHERED", "JOB_MISSING", "JOB_UNREADABLE", "NotAMultirunError", "gather",
           "gather_and_write", "main", "write_gathered"]

TASK_FILES = {"trial": "trial_endpoints.nc", "sweep": "sweep.nc",
              "sensitivity": "sensitivity.nc"}
"""Result file of each task (``simulate`` writes its ``output_file``)."""

EXIT_INCOMPLETE = 3
"""Exit code of ``cartsim gather`` when some expected jobs are missing or unreadable."""

CELL_BYTES = 2e3
"""Bookkeeping per expected job (its overrides, directory, status) while gathering."""

MEMORY_LIMIT_BYTES = 1e9
"""What gathering into a file may hold in memory (bookkeeping plus one slab)."""

EXPECTED = ("the directory of one multirun (hydra.sweep.dir), with multirun.yaml and one "
            "sub-directory per job (0/, 1/, ..., each with .hydra/overrides.yaml)")


class NotAMultirunError(ValueError):
    """The directory given to gather is not the directory of one Hydra multirun."""


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


def _sort_key(sweep_dir: Path):
    return lambda p: [int(s) if s.isdigit() else s for s in p.relative_to(sweep_dir).parts]


def _is_multirun_job(job: Path) -> bool:
    """Hydra records ``mode: MULTIRUN`` in every multirun job's ``.hydra/hydra.yaml``."""
    try:
        text = (job / ".hydra" / "hydra.yaml").read_text()
    except OSError:
        return False
    return any(line.strip() == "mode: MULTIRUN" for line in text.splitlines())


def _job_dirs(sweep_dir: Path) -> list[Path]:
    """The job directories of the multirun ``sweep_dir``, or :class:`NotAMultirunError`.

    With ``multirun.yaml`` every ``*/.hydra/overrides.yaml`` below is a job (Hydra's
    ``hydra.sweep.subdir`` may nest them); without it, only sub-directories that Hydra
    recorded as multirun jobs are, and there must be at least one."""
    if (sweep_dir / "multirun.yaml").is_file():
        return sorted({p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml")
                       if p.parent.parent != sweep_dir}, key=_sort_key(sweep_dir))
    children = sorted((p for p in sweep_dir.iterdir()
                       if (p / ".hydra" / "overrides.yaml").is_file()), key=_sort_key(sweep_dir))
    single = [p for p in children if not _is_multirun_job(p)]
    if children and not single:
        return children
    raise NotAMultirunError(f"cartsim gather: {str(sweep_dir)!r} is not a Hydra multirun "
                            f"directory: expected {EXPECTED}; it {_what_is_there(sweep_dir)}")


def _what_is_there(d: Path) -> str:
    def some(paths: list[Path], what: str) -> str:
        return f"{len(paths)} {what} (e.g. {paths[0].relative_to(d)})"

    multiruns = sorted(p.parent for p in itertools.chain(d.glob("*/multirun.yaml"),
                                                         d.glob("*/*/multirun.yaml")))
    if multiruns:
        return f"holds {some(multiruns, 'multiruns')}; gather one of them"
    if (d / ".hydra").is_dir():
        return "is the output directory of a single run (cartsim without -m)"
    runs = sorted(p.parent for p in itertools.chain(d.glob("*/.hydra"), d.glob("*/*/.hydra")))
    if runs:
        return f"holds {some(runs, 'single runs')}, not the jobs of one multirun"
    return "holds no Hydra job and no multirun.yaml"


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


def _unique(values: list) -> list:
    out: dict[str, object] = {}
    for v in values:
        out.setdefault(repr(v), v)
    return list(out.values())


def _plan(sweep_dir, file: str | None) -> Layout:
    """Find the jobs and lay them out (grid or ``job``); reads no result file."""
    from cartsim.budget import check_memory

    sweep_dir = Path(sweep_dir).resolve()
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"cartsim gather: {str(sweep_dir)!r} is not a directory")
    jobs = _job_dirs(sweep_dir)
    expected = _expected(sweep_dir)
    records = []
    for job in jobs:
        ovs = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or []
        path = _result_file(job, file)
        records.append({"dir": str(job.relative_to(sweep_dir)),
                        "values": dict(_parse(str(t))[:2] for t in ovs), "path": path,
                        "status": JOB_GATHERED if path.is_file() else JOB_MISSING})
    inferred = not (expected is not None and expected[0])
    if inferred:
        all_keys = sorted({k for r in records for k in r["values"]})
        keys = [k for k in all_keys if len({repr(r["values"].get(k)) for r in records}) > 1]
        levels = [_unique([r["values"].get(k) for r in records]) for k in keys]
    else:
        keys, levels = expected
    by_combo: dict[tuple, dict] = {}
    for r in records:
        by_combo.setdefault(tuple(r["values"].get(k) for k in keys), r)
    level_sets = [set(v) for v in levels]
    n_grid = math.prod(len(v) for v in levels)
    grid = all(all(x in s for x, s in zip(c, level_sets)) for c in by_combo)
    if inferred:  # a sparse design (random search) is listed along ``job``, not a grid
        grid = grid and n_grid <= max(4 * len(by_combo), len(by_combo) + 64)
    n_cells = n_grid if grid else len(by_combo)
    check_memory(CELL_BYTES * (n_cells + len(records)),
                 f"cartsim gather {sweep_dir} ({n_cells} expected jobs)",
                 "gather parts of the multirun (--file) or fewer jobs",
                 limit=MEMORY_LIMIT_BYTES)
    combos = itertools.product(*levels) if grid else list(by_combo)
    cells = [by_combo.get(c) or {"dir": "", "values": dict(zip(keys, c)), "path": None,
                                 "status": JOB_MISSING} for c in combos]
    if grid:
        dims, shape = tuple(keys), tuple(len(v) for v in levels)
        coords = {k: (k, np.asarray(v), _coord_attrs(k)) for k, v in zip(keys, levels)}
    else:
        dims, shape = ("job",), (len(cells),)
        coords = {"job": ("job", np.arange(len(cells)), {"long_name": "job index"})}
        for k in keys:
            coords[k] = ("job", np.asarray([c["values"].get(k) for c in cells]),
                         _coord_attrs(k))
    return Layout(sweep_dir, keys, dims, shape, coords, cells)


def _gather_attrs(plan: Layout) -> dict:
    missing = [{"overrides": {k: c["values"].get(k) for k in plan.keys}, "dir": c["dir"],
                "status": "missing" if c["status"] == JOB_MISSING else "unreadable"}
               for c in plan.cells if c["status"] != JOB_GATHERED]
    return {"title": "cartsim gathered multirun",
            "sweep_dir": str(plan.sweep_dir),
            "swept_keys": json.dumps(plan.keys),
            "n_jobs": plan.n_cells,
            "n_missing": sum(c["status"] == JOB_MISSING for c in plan.cells),
            "n_unreadable": sum(c["status"] == JOB_UNREADABLE for c in plan.cells),
            "missing_jobs": json.dumps(missing),
            "gathered": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


# ---------------------------------------------------------------------------------- API
def gather(sweep_dir, *, file: str | None = None) -> xr.Dataset:
    """Gather every job of a Hydra multirun directory into one Dataset, in memory.

    Built by the same streaming writer as :func:`gather_and_write` (into a temporary file,
    then loaded); refused with :class:`cartsim.budget.BudgetError` when the result would
    not fit in memory (gather it into a file with ``cartsim gather DIR`` instead).

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
        ``sweep_dir`` is not a directory.
    NotAMultirunError
        ``sweep_dir`` is not the directory of one multirun (a ``ValueError``).
    """
    from cartsim.budget import check_memory

    plan = _plan(sweep_dir, file)
    with tempfile.TemporaryDirectory(prefix="cartsim-gather-") as tmp:
        path = stream(plan, Path(tmp) / "gathered.nc", "netcdf", _gather_attrs)
        check_memory(2 * path.stat().st_size, f"gathering {plan.sweep_dir} in memory",
                     f"write it to a file instead: cartsim gather {plan.sweep_dir}")
        with open_job(path) as ds:
            return ds.load()


def write_gathered(ds: xr.Dataset, path, fmt: str = "netcdf") -> Path:
    """Write an in-memory Dataset atomically: netCDF (``write_netcdf``) or a zarr v2 store.

    Zarr format 2 with consolidated metadata: readable by every zarr implementation
    (format 3 has no specification yet for fixed-length strings, e.g. option names)."""
    from cartsim.io import atomic_directory, write_netcdf

    if fmt == "netcdf":
        return write_netcdf(ds, path)
    if fmt != "zarr":
        raise ValueError(f"format={fmt!r} is not accepted: expected netcdf or zarr")
    return atomic_directory(path, lambda tmp: ds.to_zarr(tmp, mode="w", zarr_format=2,
                                                         consolidated=True))


def gather_and_write(sweep_dir, *, file: str | None = None, fmt: str = "netcdf",
                     out=None) -> tuple[xr.Dataset, Path]:
    """Gather a multirun straight into a file (default ``<sweep_dir>/gathered.nc|.zarr``),
    streaming: memory holds one slab of one job, whatever the multirun's size.

    Returns the file opened lazily (its data stays on disk) and its path."""
    if fmt not in ("netcdf", "zarr"):
        raise ValueError(f"format={fmt!r} is not accepted: expected netcdf or zarr")
    plan = _plan(sweep_dir, file)
    out = Path(out) if out else plan.sweep_dir / ("gathered.zarr" if fmt == "zarr"
                                                  else "gathered.nc")
    path = stream(plan, out.resolve(), fmt, _gather_attrs)
    ds = xr.open_zarr(path) if fmt == "zarr" else open_job(path)
    return ds, path


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
    except (FileNotFoundError, ValueError, OSError) as exc:  # OutputError: a full disk
        print(f"cartsim: error: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"cartsim: wrote {path}", flush=True)
    print(f"cartsim: {summary_line(ds)}", flush=True)
    for m in json.loads(ds.attrs["missing_jobs"]):
        print(f"cartsim: {m['status']} job: {m['overrides']} {m['dir']}", file=sys.stderr,
              flush=True)
    incomplete = ds.attrs["n_missing"] + ds.attrs["n_unreadable"]
    ds.close()
    return 0 if incomplete == 0 else EXIT_INCOMPLETE
