"""The stale-cache guard of the compiled solvers, called explicitly before they first run.

Numba invalidates a cached function only when its own source file changes; the solvers
inline the model kernels, so an edit of e.g. ``cd7_kernel.py`` would otherwise keep
serving the old compiled model. ``refresh_cache`` hashes the sources of a group of
compiled modules and every ``cartsim`` module they import (transitively) and, when the
hash differs from the stamp stored beside the Numba cache, flushes the cache index of
every jitted function in those modules. ``guard_cache`` runs it once per process:
``cartsim.solvers.api.solve_batch`` calls it before the first compiled solve (importing
the solvers compiles and checks nothing); a caller of the compiled
``cartsim.solvers.driver.integrate`` itself calls ``guard_cache()`` first.

The stochastic engine guards its own group (``seeds=("cartsim.stochastic.kernel",)``).
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import os
import sys
import threading

from numba.core.dispatcher import Dispatcher

_STAMP_NAME = "cartsim_kernel_sources.sha256"
_SEEDS = ("cartsim.solvers.driver", "cartsim.models.kernels")
"""The compiled ODE solvers and the model kernels they inline; the stamp lives in the
first seed's Numba cache folder."""

_GUARDED: set[tuple[tuple[str, ...], str]] = set()
_LOCK = threading.Lock()


def _dependency_files(seeds=_SEEDS):
    """Source files of ``seeds`` and of every ``cartsim`` module they import, transitively.

    ``from pkg import name`` adds ``pkg.name`` when it is a module, else ``pkg``.
    """
    files = {}
    stack = list(seeds)
    while stack:
        name = stack.pop()
        if name in files:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError, AttributeError):
            spec = None
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        files[name] = spec.origin
        with open(spec.origin, "rb") as fh:
            tree = ast.parse(fh.read())
        package = name if spec.submodule_search_locations else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                stack.extend(a.name for a in node.names if a.name.startswith("cartsim"))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    mod = f"{base}.{node.module}" if node.module else base
                else:
                    mod = node.module or ""
                if not mod.startswith("cartsim"):
                    continue
                for a in node.names:
                    sub = f"{mod}.{a.name}"
                    try:
                        is_mod = importlib.util.find_spec(sub) is not None
                    except (ImportError, ValueError, AttributeError):
                        is_mod = False
                    stack.append(sub if is_mod else mod)
    return files


def sources_hash(seeds=_SEEDS):
    """SHA-256 over the sources of all compiled kernels and solvers (see ``refresh_cache``)."""
    digest = hashlib.sha256()
    for name, path in sorted(_dependency_files(seeds).items()):
        digest.update(name.encode())
        with open(path, "rb") as fh:
            digest.update(hashlib.sha256(fh.read()).digest())
    return digest.hexdigest()


def _jitted(name):
    """The cached Numba dispatchers defined in module ``name`` (when it is imported)."""
    mod = sys.modules.get(name)
    if mod is None:
        return []
    return [obj for obj in list(vars(mod).values())
            if isinstance(obj, Dispatcher) and getattr(obj, "_cache", None) is not None
            and getattr(obj, "py_func", None) is not None and obj.py_func.__module__ == name]


def refresh_cache(force=False, seeds=_SEEDS, stamp_name=_STAMP_NAME):
    """Drop Numba caches made stale by edits in *other* files than the cached function's.

    Imports ``seeds`` (which compiles nothing), hashes their sources and those of every
    ``cartsim`` module they import, and when the hash differs from the stamp
    ``stamp_name`` in the first seed's Numba cache folder (or ``force``), flushes the
    cache index of every jitted function of those modules and writes the new stamp.
    Call it before the group's first compiled call in a process (``guard_cache``).
    Returns True when caches were flushed.
    """
    try:
        for name in seeds:
            importlib.import_module(name)
        jitted = _jitted(seeds[0])
        if not jitted:
            return False
        stamp_dir = jitted[0]._cache.cache_path
        stamp = os.path.join(stamp_dir, stamp_name)
        current = sources_hash(seeds)
        try:
            with open(stamp) as fh:
                previous = fh.read().strip()
        except OSError:
            previous = None
        if previous == current and not force:
            return False
        for name in _dependency_files(seeds):
            for obj in _jitted(name):
                obj._cache.flush()
        os.makedirs(stamp_dir, exist_ok=True)
        tmp = f"{stamp}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            fh.write(current + "\n")
        os.replace(tmp, stamp)
        return True
    except (OSError, AttributeError, SyntaxError):
        return False


def guard_cache(seeds=_SEEDS, stamp_name=_STAMP_NAME):
    """``refresh_cache`` once per process for this group of compiled modules (thread-safe).

    Returns True when this call flushed caches.
    """
    key = (tuple(seeds), stamp_name)
    if key in _GUARDED:
        return False
    with _LOCK:
        if key in _GUARDED:
            return False
        flushed = refresh_cache(seeds=seeds, stamp_name=stamp_name)
        _GUARDED.add(key)
        return flushed
