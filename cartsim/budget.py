"""Size estimates up front: a run that cannot fit in memory is refused before it starts.

A virtual trial or a sweep holds a few kB per patient or point for the whole run (the cohort's
scenarios, the endpoints, the swept points) and one chunk of trajectories at a time. The
estimates below are those costs, measured on the default ``cd7`` model with
``benchmarks/trial.py`` and ``benchmarks/sweep.py`` and rounded up (a 2-year trial, chunks of
1,000: 0.90 GB peak at 10,000 patients, 0.88 GB at 3,000, 0.57 GB at 3,000 in chunks of 500:
~3 kB per patient, ~0.6 MB per patient of a chunk); they are meant to tell
a run of 10^5 patients (fits) from one of 10^8 (does not) in a millisecond, not to predict
the peak to the megabyte. A run whose estimate exceeds the memory available (``MemAvailable``
of ``/proc/meminfo``, or the control group's limit if lower) stops with
:class:`BudgetError` naming the setting, the estimate and the limit, instead of a
``MemoryError`` after a long wait.
"""

from __future__ import annotations

import math
import os

from cartsim.scenario import ScenarioError

__all__ = ["BudgetError", "available_memory", "check_memory", "check_sweep", "check_trial",
           "sweep_memory", "trial_memory"]

GB = 1e9
BASE_BYTES = 0.5 * GB
"""The interpreter, NumPy/xarray/numba and the compiled kernels (~0.3 GB measured)."""
PATIENT_BYTES = 12e3
"""Held per patient for the whole trial: scenario objects, covariates, endpoints (x3 while
the chunks are concatenated and merged with the cohort); ~3 kB measured, 4x margin."""
POINT_BYTES = 4e3
"""Held per sweep point: the point's values, its endpoints and status (x3 while chunks are
concatenated)."""
SAMPLE_BYTES = 1000.0
"""Per patient and recorded day in a chunk: the (patient, time) states and observables,
float64, with the solver's output, the Dataset and the endpoints' work arrays (~840 B
measured)."""
STORED_SAMPLE_BYTES = 8.0 * 60
"""Per patient and output time of kept trajectories (every state and observable)."""


class BudgetError(ScenarioError):
    """A run would need more memory than is available (the message says how much)."""


def available_memory() -> float:
    """Bytes this process can still allocate: ``MemAvailable`` (Linux), capped by a cgroup
    memory limit; ``inf`` where neither can be read."""
    avail = math.inf
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = float(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as fh:
                text = fh.read().strip()
            if text == "max":
                continue
            with open(usage_file) as fh:
                used = float(fh.read().strip())
            avail = min(avail, float(text) - used)
        except (OSError, ValueError):
            continue
    if math.isinf(avail):
        try:
            avail = float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    return avail


def check_memory(need: float, setting: str, hint: str, *, limit: float | None = None) -> None:
    """Raise :class:`BudgetError` when ``need`` bytes exceed ``limit`` (default: what is
    available now), e.g. ``population.n=100000000 needs ~1200.5 GB of memory, more than the
    22.9 GB available; <hint>``."""
    limit = available_memory() if limit is None else float(limit)
    if need > limit:
        raise BudgetError(f"{setting} needs ~{need / GB:.1f} GB of memory, more than the "
                          f"{limit / GB:.1f} GB available; {hint}")


def trial_memory(n: int, n_times: int, chunk_size: int, *,
                 save_trajectories: bool = False) -> float:
    """Estimated peak bytes of a trial of ``n`` patients with ``n_times`` output times."""
    chunk = min(int(n), int(chunk_size))
    need = BASE_BYTES + PATIENT_BYTES * n + SAMPLE_BYTES * chunk * n_times
    if save_trajectories:
        need += 2 * STORED_SAMPLE_BYTES * n * n_times  # the chunks, then their concatenation
    return float(need)


def sweep_memory(n_points: int, per_point: int, chunk_size: int, n_times: int) -> float:
    """Estimated peak bytes of a sweep of ``n_points`` points of ``per_point`` patients."""
    chunk = min(int(n_points) * int(per_point), max(int(chunk_size), int(per_point)))
    return float(BASE_BYTES + POINT_BYTES * n_points + PATIENT_BYTES * chunk
                 + SAMPLE_BYTES * chunk * n_times)


def _n_times(base) -> int:
    """Times recorded per patient: the output grid, and at least every day of follow-up
    (the endpoints are read on a daily grid whatever ``output.dt``)."""
    out = base.output
    if out.times is not None:
        n_out = len(out.times)
        span = float(max(out.times) - min(out.times)) if n_out else 0.0
    else:
        span = float(out.t_end - out.t_start)
        n_out = int(math.floor(span / out.dt + 1e-9)) + 2
    return max(n_out, int(span) + 2)


def check_trial(base, population=None, options=None, cohort=None, *,
                limit: float | None = None) -> None:
    """Refuse a trial that cannot fit (:class:`BudgetError`); called before the cohort is
    drawn, so ``population.n=1e8`` stops in milliseconds."""
    if cohort is not None:
        n, setting = len(cohort.scenarios), f"a cohort of {len(cohort.scenarios)} patients"
    elif options is not None and options.cohort_file is not None:
        return  # a table's size is known once read; it is then checked with the cohort
    else:
        n = 100 if population is None else int(population.n)
        setting = f"population.n={n}"
    chunk = 1000 if options is None else options.chunk_size
    keep = False if options is None else options.save_trajectories
    need = trial_memory(n, _n_times(base), chunk, save_trajectories=keep)
    hint = ("split the cohort into several runs (different seeds)" if not keep else
            "set trial.save_trajectories=false, or split the cohort into several runs")
    check_memory(need, setting + (" with trial.save_trajectories=true" if keep else ""),
                 hint, limit=limit)


def check_sweep(base, spec, *, limit: float | None = None) -> None:
    """Refuse a sweep that cannot fit (:class:`BudgetError`), from the axes' lengths alone
    (before any point is listed)."""
    if spec.method == "grid":
        n_points = math.prod(len(a.values) if a.space == "list" else int(a.num)
                             for a in spec.axes)
        setting = ("sweep.axes (" + " x ".join(str(len(a.values) if a.space == "list"
                                                      else a.num) for a in spec.axes)
                   + f" = {n_points} points)")
    else:
        n_points, setting = int(spec.n_samples), f"sweep.n_samples={spec.n_samples}"
    per = max(1, int(spec.population_n))
    if per > 1:
        setting += f" with sweep.population_n={per}"
    need = sweep_memory(n_points, per, spec.chunk_size, _n_times(base))
    check_memory(need, setting, "sweep fewer points, or split the sweep into several runs "
                 "over parts of an axis (cartsim -m ... and cartsim gather)", limit=limit)
