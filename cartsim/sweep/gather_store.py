"""Stacking the jobs of a multirun into one netCDF or zarr store, one job slab at a time.

The writer behind :mod:`cartsim.sweep.gather`. Each job's result file is opened lazily,
twice: once to check it (readable, same coordinates as the first, longest strings) and
once to copy it, variable by variable in slabs of at most :data:`SLAB_BYTES` along the
variable's first dim, into its cell of the output, whose variables are created up front
from zero-memory placeholders (xarray's own backend stores do the encoding: dtypes,
``_FillValue``, bool and time coding, the ``coordinates`` attribute). Memory: one slab,
whatever the number and size of the jobs. A missing or unreadable job's cell holds fill
values (NaN, NaT, -1, False, ""), never numbers.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import xarray as xr

JOB_GATHERED, JOB_MISSING, JOB_UNREADABLE = 0, -1, -2

SLAB_BYTES = 64 * 2**20
"""A job's variable is read and written in slabs (along its first dim) of at most this size."""


def _fill(dtype):
    kind = np.dtype(dtype).kind
    if kind == "b":
        return False
    if kind in "iu":
        return -1
    if kind in "mM":
        return np.datetime64("NaT") if kind == "M" else np.timedelta64("NaT")
    return "" if kind in "USO" else np.nan  # strings: "" (bytes are gathered as str)


@dataclasses.dataclass
class Layout:
    """Where every expected job goes: dims, coordinates, and per cell its record
    (``dir``, ``values`` of the swept keys, ``path`` of its result file, ``status``)."""

    sweep_dir: Path
    keys: list[str]
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    coords: dict
    cells: list[dict]  # in C order of ``shape``: dir, values, path, status

    @property
    def n_cells(self) -> int:
        return len(self.cells)


def open_job(path: Path) -> xr.Dataset:
    """A job's result file, opened lazily."""
    return xr.open_dataset(path, engine="h5netcdf")


def _check_aligned(template: dict, ds: xr.Dataset) -> None:
    """What ``xr.align(join="exact")`` demands of two jobs, without loading them."""
    for name in set(template["indexes"]) & set(ds.indexes):
        if not template["indexes"][name].equals(ds.indexes[name]):
            raise ValueError("cartsim gather: the jobs' results have different coordinates "
                             f"(e.g. output grids), so they cannot share one Dataset: the "
                             f"index {name!r} differs")


def _scan(layout: Layout, strings: bool) -> tuple[dict | None, dict[str, int]]:
    """Open every result file once (lazily): statuses, the template (the first readable
    job) and, with ``strings``, the longest string of each string variable."""
    template, widths = None, {}
    for cell in layout.cells:
        if cell["status"] != JOB_GATHERED:
            continue
        try:
            ds = open_job(cell["path"])
        except Exception:
            cell["status"] = JOB_UNREADABLE
            continue
        with ds:
            if template is None:
                template = _template(ds)
            _check_aligned(template, ds)
            if strings:
                for name in template["strings"]:
                    if name in ds:
                        v = np.asarray(ds[name].values).astype(str)
                        widths[name] = max(widths.get(name, 1), int(v.dtype.itemsize // 4))
    return template, widths


def _template(ds: xr.Dataset) -> dict:
    """The first readable job: its structure (coordinates loaded, data left on disk)."""
    coords = {name: c.variable.load() for name, c in ds.coords.items()}
    strings = [n for n, da in ds.data_vars.items() if da.dtype.kind in "USO"]
    # one element of each variable, with its on-disk encoding: enough to encode it alike
    first = {n: da.variable[tuple(slice(0, 1) for _ in da.dims)].load()
             for n, da in ds.data_vars.items()}
    return {"indexes": dict(ds.indexes), "coords": coords, "attrs": dict(ds.attrs),
            "strings": strings, "first": first,
            "vars": {n: (da.dims, da.shape, da.dtype, dict(da.attrs))
                     for n, da in ds.data_vars.items()}}


def _slabs(shape: tuple[int, ...], itemsize: int):
    """Index tuples over a job's variable, slabs along its first dim of <= SLAB_BYTES."""
    if not shape:
        yield ()
        return
    row = itemsize * math.prod(shape[1:])
    step = max(1, SLAB_BYTES // max(row, 1))
    for i in range(0, shape[0], step):
        yield (slice(i, min(shape[0], i + step)),)


# --------------------------------------------------------------------- streaming writer
class _Targets:
    """An ``ArrayWriter`` stand-in: small variables are written as xarray would, the job
    variables (zero-memory placeholders) only get their target, filled job by job."""

    def __init__(self, placeholders: dict[int, str]):
        self.placeholders, self.targets = placeholders, {}

    def add(self, source, target, region=None):
        name = self.placeholders.get(id(source))
        if name is not None:
            self.targets[name] = target
        else:
            target[region or ...] = np.asarray(source)


def _store(path: Path, fmt: str):
    if fmt == "netcdf":
        from xarray.backends import H5NetCDFStore

        return H5NetCDFStore.open(str(path), mode="w")
    from xarray.backends.zarr import ZarrStore

    return ZarrStore.open_group(str(path), mode="w", zarr_format=2)


def stream(layout: Layout, path: Path, fmt: str, final_attrs) -> Path:
    """Write the gathered Dataset to ``path`` (atomically), one job slab at a time;
    ``final_attrs(layout)`` gives the attributes that depend on the jobs' final status."""
    from cartsim.io import atomic, atomic_directory, check_free_space

    template, widths = _scan(layout, strings=fmt == "zarr")
    skeleton, dtypes = _skeleton(layout, template, widths)
    njob = len(layout.dims)
    # the "coordinates" attributes; no data is touched (job variables are broadcast views)
    variables, _ = xr.conventions.encode_dataset_coordinates(skeleton)

    def write(tmp: Path) -> None:
        store = _store(tmp, fmt)
        try:
            enc, deferred = {}, {}
            for name, var in variables.items():
                if name in dtypes:  # a job variable: encoded as its first job is
                    one = _job_variable(var, template["first"][name], dtypes[name], njob)
                    if dtypes[name].kind == "U":  # as wide as the widest job's strings
                        one = one.astype(dtypes[name])
                    e = store.encode({name: one}, {})[0][name]
                    e = xr.Variable(e.dims, np.broadcast_to(np.zeros((), e.dtype), var.shape),
                                    e.attrs, e.encoding)
                else:
                    e = store.encode({name: var}, {})[0][name]
                enc[name] = e
                if name in dtypes or name == "job_status":
                    deferred[id(e.data)] = name
            # HDF5 must not meet a full disk (see cartsim.io), nor should zarr's background
            # writes (they go on after the first failure)
            check_free_space(tmp.parent, sum(v.size * (v.dtype.itemsize + 16 * (
                v.dtype.kind in "OUS")) for v in enc.values()), path)
            store.set_dimensions(enc)
            writer = _Targets(deferred)
            store.set_variables(enc, set(), writer)
            for flat, cell in enumerate(layout.cells):
                key = tuple(slice(int(p), int(p) + 1)
                            for p in np.unravel_index(flat, layout.shape))
                copied = cell["status"] == JOB_GATHERED and _copy_job(
                    cell, key, store, writer.targets, variables, dtypes, njob)
                if not copied:
                    if cell["status"] == JOB_GATHERED:  # opened in the scan, not now
                        cell["status"] = JOB_UNREADABLE
                    _fill_job(key, store, writer.targets, variables, dtypes, njob)
            status = np.array([c["status"] for c in layout.cells], dtype=np.int64)
            e = store.encode({"job_status": variables["job_status"].copy(
                data=status.reshape(layout.shape))}, {})[0]["job_status"]
            writer.targets["job_status"][...] = np.asarray(e.data)
            attrs = {**skeleton.attrs, **final_attrs(layout)}
            store.set_attributes({k: store.encode_attribute(v) for k, v in attrs.items()})
        finally:
            store.close()
        if fmt == "zarr":
            import zarr

            zarr.consolidate_metadata(str(tmp), zarr_format=2)

    if fmt == "zarr":
        return atomic_directory(path, write)
    # HDF5 reports a failed write as RuntimeError as often as OSError
    return atomic(path, write, errors=(OSError, RuntimeError))


def _skeleton(layout: Layout, template: dict | None, widths: dict[str, int]):
    """The gathered Dataset with every job variable as a zero-memory broadcast placeholder;
    and the dtype each job variable is written in (strings: fixed width for zarr)."""
    status = np.array([c["status"] for c in layout.cells], dtype=np.int64)
    data_vars = {
        "job_status": (layout.dims, status.reshape(layout.shape),
                       {"units": "1", "long_name": "job status: 0 gathered, -1 missing (no "
                        "result file), -2 unreadable file"}),
        "job_dir": (layout.dims, np.array([c["dir"] for c in layout.cells], dtype=str)
                    .reshape(layout.shape), {"long_name": "job directory relative to the "
                                           "sweep dir"})}
    coords, attrs, dtypes = dict(layout.coords), {}, {}
    if template is not None:
        for name, (dims, shape, dtype, var_attrs) in template["vars"].items():
            if dtype.kind in "USO":
                dtype = np.dtype(f"U{widths.get(name, 1)}")
            dtypes[name] = dtype
            data_vars[name] = (layout.dims + dims, np.broadcast_to(
                np.array(_fill(dtype), dtype=dtype), layout.shape + shape), var_attrs)
        coords.update({k: v for k, v in template["coords"].items() if k not in coords})
        attrs = dict(template["attrs"])
        attrs["job_attrs_note"] = ("attributes (config, seed, ...) of the first gathered job; "
                                   "the jobs differ by the swept keys, which are the "
                                   "coordinates")
    return xr.Dataset(data_vars, coords=coords, attrs=attrs), dtypes


def _job_variable(var: xr.Variable, job_var, dtype, njob: int, key=()) -> xr.Variable:
    """A job's variable (or the slab ``key`` of it) with length-1 job dims, in ``dtype``."""
    data = np.asarray(job_var[key].values if key else job_var.values)
    if dtype.kind == "U":  # its own width; the zarr target is as wide as the widest job
        data = data.astype(str)
    return xr.Variable(var.dims, data.reshape((1,) * njob + data.shape), var.attrs,
                       encoding=_time_encoding(dtype))


TIME_UNITS = {"ns": "nanoseconds", "us": "microseconds", "ms": "milliseconds", "s": "seconds",
              "m": "minutes", "h": "hours", "D": "days"}


def _time_encoding(dtype) -> dict:
    """Every job's times in the same exact integer units (those of its resolution): units
    inferred from one job would round the others' (hours lost in "days since ...")."""
    if dtype.kind not in "mM":
        return {}
    units = TIME_UNITS.get(np.datetime_data(dtype)[0], "nanoseconds")
    if dtype.kind == "M":
        return {"units": f"{units} since 1970-01-01", "calendar": "proleptic_gregorian",
                "dtype": "int64"}
    return {"units": units, "dtype": "int64"}


def _write(store, target, name, one: xr.Variable, key) -> None:
    target[key] = np.asarray(store.encode({name: one}, {})[0][name].data)


def _copy_job(cell, job_key, store, targets, variables, dtypes, njob: int) -> bool:
    """Copy one job's variables slab by slab; False if its file cannot be read."""
    try:
        ds = open_job(cell["path"])
    except Exception:
        return False
    with ds:
        for name, target in targets.items():
            if name not in dtypes:
                continue
            var, dtype = variables[name], dtypes[name]
            shape = var.shape[njob:]
            if name not in ds:
                _fill_var(job_key, store, target, name, var, dtype, njob)
                continue
            if ds[name].shape != shape:
                raise ValueError("cartsim gather: the jobs' results have different shapes of "
                                 f"{name!r} ({ds[name].shape} in {cell['dir']}, {shape} in "
                                 "the first job), so they cannot share one Dataset")
            for key in _slabs(shape, dtype.itemsize):
                try:
                    one = _job_variable(var, ds[name].variable, dtype, njob, key)
                except Exception:
                    return False
                _write(store, target, name, one, job_key + key)
    return True


def _fill_job(job_key, store, targets, variables, dtypes, njob: int) -> None:
    for name, target in targets.items():
        if name in dtypes:
            _fill_var(job_key, store, target, name, variables[name], dtypes[name], njob)


def _fill_var(job_key, store, target, name, var, dtype, njob: int) -> None:
    shape = var.shape[njob:]
    for key in _slabs(shape, dtype.itemsize):
        block = tuple(k.stop - k.start for k in key) + shape[len(key):]
        data = np.full((1,) * njob + block, _fill(dtype), dtype=dtype)
        _write(store, target, name, xr.Variable(var.dims, data, var.attrs,
                                                encoding=_time_encoding(dtype)), job_key + key)
