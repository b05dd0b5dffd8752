"""Writing results: atomic files, and a full disk as an error that names the file.

Every file cartsim writes goes through :func:`atomic`: a temporary name in the same
directory, ``fsync``, then ``os.replace``, so a reader never sees a half-written file and an
interrupted run leaves nothing under the final name. A failed write (a full disk, a quota,
no permission, an I/O error on ``fsync``) removes the temporary file and raises
:class:`OutputError`, whose one-line message names the file and the cause.

netCDF files are built in memory by HDF5 and written to disk by Python
(:func:`write_netcdf`): HDF5 must never see a failing ``write()``. When it does (a full
disk under an open HDF5 file), HDF5 raises, its file is left in a failed state, and the
next call into it (h5netcdf closing the file when the object is garbage-collected) crashes
inside HDF5: that was the segmentation fault (exit 139) of a full disk. A file too large
to build in memory (more than :data:`IMAGE_LIMIT_BYTES`) is written by HDF5 directly, after
checking that the disk has room for it (:func:`check_free_space`); only a disk filled by
another process during that write can still reach HDF5.
"""

from __future__ import annotations

import errno as _errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

__all__ = ["IMAGE_LIMIT_BYTES", "OutputError", "atomic", "atomic_directory",
           "check_free_space", "write_bytes", "write_figure", "write_netcdf", "write_text"]

IMAGE_LIMIT_BYTES = 512 * 2**20
"""Largest netCDF file (its Dataset's ``nbytes``) that :func:`write_netcdf` builds in memory
first (costing that much memory once more); larger ones are written by HDF5 directly."""

FREE_SPACE_MARGIN = (1.1, 16 * 2**20)
"""A direct write needs ``1.1 * size + 16 MiB`` of free disk (HDF5 metadata, heaps)."""


class OutputError(OSError):
    """A result could not be written: the message names the file and why.

    Nothing is left behind: not the temporary file, not a partial file under the final
    name. ``errno`` is that of the failure (``errno.ENOSPC`` for a full disk) when known.
    """


def _reason(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    if code == _errno.ENOSPC:
        return "no space left on the device"
    if code == _errno.EDQUOT:
        return "disk quota exceeded"
    if code in (_errno.EACCES, _errno.EPERM, _errno.EROFS):
        return f"not writable ({os.strerror(code)})"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"{text}" if code is None else f"{text} (errno {code})"


def _error(path: Path, exc: BaseException) -> OutputError:
    code = getattr(exc, "errno", None)
    hint = ("free some space or choose another output directory"
            if code in (_errno.ENOSPC, _errno.EDQUOT) else "choose another output directory")
    out = OutputError(f"cannot write {path}: {_reason(exc)}; nothing was written under that "
                      f"name ({hint})")
    out.errno = code
    return out


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic(path, write: Callable[[Path], object], *, errors=(OSError,)) -> Path:
    """Call ``write(tmp)`` on a temporary name beside ``path``, ``fsync`` it and rename it to
    ``path``; return the absolute path.

    An exception of a type in ``errors`` (default ``OSError``) from ``write``, ``fsync``
    or the rename becomes :class:`OutputError`; the temporary file is removed in every case.
    """
    path = Path(path).resolve()
    tmp = _tmp_name(path)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # a delayed write error (NFS, a full thin pool) surfaces here
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OutputError:
        raise
    except errors as exc:
        raise _error(path, exc) from exc
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return path


def atomic_directory(path, write: Callable[[Path], object]) -> Path:
    """:func:`atomic` for a directory tree (e.g. a zarr store): ``write(tmp_dir)``, then the
    tree replaces ``path`` (an existing one is moved aside and removed afterwards)."""
    path = Path(path).resolve()
    tmp = _tmp_name(path)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.{os.getpid()}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OutputError:
        raise
    except OSError as exc:
        _remove_tree(tmp)
        raise _error(path, exc) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _remove_tree(tmp: Path, wait: float = 2.0) -> None:
    """Remove ``tmp``, again if it comes back within ``wait`` seconds: zarr's background
    writes go on after the first one failed and re-create their folders."""
    import time

    end = time.monotonic() + wait
    while True:
        shutil.rmtree(tmp, ignore_errors=True)
        if time.monotonic() > end:
            return
        time.sleep(0.1)


def _write_file(tmp: Path, data: bytes | memoryview) -> None:
    with open(tmp, "wb") as fh:
        fh.write(data)


def write_bytes(data: bytes | memoryview, path) -> Path:
    """Write ``data`` to ``path`` atomically; returns the absolute path."""
    return atomic(path, lambda tmp: _write_file(tmp, data))


def write_text(text: str, path) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the absolute path."""
    return write_bytes(text.encode("utf-8"), path)


def write_figure(fig, path, **savefig_kwargs) -> Path:
    """Render a matplotlib figure (format from the suffix) and write it atomically."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", **savefig_kwargs)
    return write_bytes(buf.getbuffer(), path)


def check_free_space(directory, nbytes: float, path=None) -> None:
    """Raise :class:`OutputError` (ENOSPC) unless ``directory``'s disk has room for
    ``nbytes`` (times :data:`FREE_SPACE_MARGIN`)."""
    scale, extra = FREE_SPACE_MARGIN
    need = scale * float(nbytes) + extra
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return  # cannot tell; the write itself will say
    if free < need:
        err = OutputError(f"cannot write {path or directory}: it needs ~{need / 1e9:.2f} GB "
                          f"and the disk has {free / 1e9:.2f} GB free; nothing was written "
                          "(free some space or choose another output directory)")
        err.errno = _errno.ENOSPC
        raise err


def write_netcdf(ds, path) -> Path:
    """Write ``ds`` to ``path`` (netCDF4 via h5netcdf) atomically; returns the absolute path.

    Up to :data:`IMAGE_LIMIT_BYTES` the file is built in memory and written by Python, so a
    full disk is a clean :class:`OutputError`; larger files are written by HDF5 after
    :func:`check_free_space`.
    """
    path = Path(path).resolve()
    size = getattr(ds, "nbytes", None)
    if size is not None and size <= IMAGE_LIMIT_BYTES:
        return atomic(path, lambda tmp: _write_file(tmp, ds.to_netcdf(engine="h5netcdf")))
    if size is not None:
        check_free_space(path.parent, size, path)
    # HDF5 reports a failed write as RuntimeError as often as OSError
    return atomic(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"),
                  errors=(OSError, RuntimeError))
