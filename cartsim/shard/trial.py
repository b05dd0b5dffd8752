"""A virtual trial split into shards: each job computes a slice of patients, then one gather.

Layout of a sharded run in its directory ``DIR`` (``shard.dir``, by default the multirun's
``hydra.sweep.dir``)::

    DIR/shards/part-0000-of-0004.nc      shard 0: the endpoints of patients [0, n/4)
    DIR/shards/part-0001-of-0004.nc      ...
    DIR/trial_endpoints.nc, trial_summary.csv, trial_summary.md, trial_km.png   (gathered)

Shard ``i`` of ``N`` holds patients ``[i n // N, (i + 1) n // N)`` (:func:`shard_patients`)
numbered as in the whole trial: the cohort is drawn as one sequence (every shard draws all
``n`` patients' values, vectorised, and builds only its own patients' scenarios:
``draw_cohort(..., patients=range(a, b))``), and the death draws and stochastic streams are
keyed by the global patient index (``run_trial(..., first_patient=a)``, see
:mod:`cartsim.randomness`). A patient's result does not depend on which other patients share
its compiled batch, so the gathered endpoints equal one job's bit for bit
(``tests/integration/test_shard.py``).

Every part is written atomically (:func:`cartsim.io.write_netcdf`: a temporary name, then a
rename), so a part under its final name is complete; it carries the hash of everything that
determines the trial (:func:`trial_description`, hashed by
:func:`cartsim.sweep.store.spec_hash`). A part is *done* when it opens, carries this run's
hash and holds exactly its shard's patients; a re-run computes the shards that are not done
and skips the others, so a failed or killed shard is re-run alone. :func:`gather_trial`
refuses, in one line naming the shard numbers, while any part is missing, unreadable or from
another configuration.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from cartsim.scenario import Scenario, ScenarioError

__all__ = ["DONE", "MISMATCH", "MISSING", "PARTS_DIR", "ShardError", "gather_trial",
           "cohort_rows", "part_path", "part_states", "run_trial_shard", "shard_patients",
           "shard_slice", "trial_cohort_head", "trial_description", "trial_hash"]

PARTS_DIR = "shards"
"""Sub-directory of the sharded run's directory that holds the part files."""

SHARD_ATTRS = ("shard_index", "shard_count", "shard_patients", "config_hash")
"""Attributes a part carries beyond the single job's; the gather removes them."""

DONE, MISSING, UNREADABLE, MISMATCH = "done", "missing", "unreadable", "mismatch"
"""States of a part file (:func:`part_states`)."""
INCOMPLETE = "incomplete"
"""State of a sweep shard whose record is there but some of its chunk files are not
(:mod:`cartsim.shard.sweep`)."""


class ShardError(ScenarioError):
    """Parts of a sharded run are missing, unreadable or from another configuration."""


def shard_patients(n: int, count: int, index: int) -> range:
    """Patients of shard ``index`` of ``count``: ``range(index n // count, (index + 1) n //
    count)``; the shards' ranges tile ``0..n-1`` in order, their sizes differ by at most 1."""
    return shard_slice(n, count, index, "patient")


def shard_slice(n: int, count: int, index: int, unit: str, hint: str = "") -> range:
    """Items ``range(index n // count, (index + 1) n // count)`` of ``n`` (patients of a
    trial, chunks of a sweep: ``unit``) for shard ``index`` of ``count``. ``hint`` ends the
    error when ``count > n``."""
    if not (isinstance(count, int) and 1 <= count <= n):
        raise ScenarioError(f"shard.count={count!r} is not accepted with {n} {unit}s: "
                            f"expected an integer in 1..{n} (every shard needs a {unit})"
                            + (f"; {hint}" if hint else ""))
    if not (isinstance(index, int) and 0 <= index < count):
        raise ScenarioError(f"shard.index={index!r} is not accepted: expected 0..{count - 1}")
    return range(index * n // count, (index + 1) * n // count)


def part_path(directory, index: int, count: int, kind: str = "part",
              suffix: str = ".nc") -> Path:
    """``<directory>/shards/<kind>-<index>-of-<count><suffix>`` (zero-padded: listed in
    order)."""
    return Path(directory) / PARTS_DIR / f"{kind}-{index:04d}-of-{count:04d}{suffix}"


def _file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def trial_description(base: Scenario, population, settings, options, *, count: int,
                      engine: dict | None = None) -> dict:
    """Everything that determines a sharded trial's parts (JSON-serialisable).

    The base scenario (with its seed), the population, the endpoint settings, the trial
    options that reach the result (cohort file and its content, chunk size, kept
    trajectories, title), the engine, the shard count and the cartsim version. Not
    ``trial.html_report`` (how the gathered trial is written) nor ``shard.index``.
    """
    from cartsim import __version__
    from cartsim.batch import scenario_yaml

    trial = {k: v for k, v in dataclasses.asdict(options).items()
             if k not in ("html_report", "ensemble", "ensemble_members")}
    if options.cohort_file is not None:
        trial["cohort_sha256"] = _file_sha256(options.cohort_file)
        population = None  # a table's cohort: the population spec plays no part
    return {"base": scenario_yaml(base),
            "population": None if population is None else dataclasses.asdict(population),
            "settings": settings.to_dict(), "trial": trial, "engine": engine,
            "shard_count": int(count), "cartsim_version": __version__}


def trial_hash(description: dict) -> str:
    """The hash a run's parts carry (:func:`cartsim.sweep.store.spec_hash`)."""
    from cartsim.sweep.store import spec_hash

    return spec_hash(description)


def _check_options(options) -> None:
    if options.ensemble is not None:
        raise ScenarioError(f"trial.ensemble={options.ensemble!r} is not accepted with "
                            "shard.count > 1: run the ensemble trial as one job")


def cohort_rows(base: Scenario, population, options, rows):
    """``(cohort, patients)``: the patients ``rows(n)`` (a range) of the whole trial's cohort
    of ``n``: the table's rows (``trial.cohort_file``), else drawn from ``population`` on the
    run seed's cohort stream, only those patients' scenarios built."""
    from cartsim.population import Cohort, PopulationSpec, draw_cohort, read_cohort
    from cartsim.randomness import cohort_rng

    if options.cohort_file is not None:
        whole = read_cohort(options.cohort_file, base)
        patients = rows(len(whole))
        sel = slice(patients.start, patients.stop)
        return Cohort(whole.scenarios[sel], whole.table.isel(patient=sel)), patients
    population = population or PopulationSpec()
    patients = rows(int(population.n))
    return draw_cohort(base, population, cohort_rng(base.seed), patients=patients), patients


def trial_cohort_head(base: Scenario, population, options, k: int):
    """The whole trial's first ``min(k, n)`` patients (what a report re-simulates when the
    trial kept no trajectories)."""
    return cohort_rows(base, population, options, lambda n: range(min(k, n)))[0]


def _open_part(path: Path) -> xr.Dataset:
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def _part_state(path: Path, index: int, count: int, digest: str, n: int | None) -> str:
    if not path.is_file():
        return MISSING
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            attrs, size = dict(ds.attrs), ds.sizes.get("patient", -1)
            first = int(ds["patient"].values[0]) if size > 0 else -1
    except Exception:  # a corrupt or foreign file: recompute rather than trust it
        return UNREADABLE
    if (attrs.get("config_hash") != digest or attrs.get("shard_count") != count
            or attrs.get("shard_index") != index):
        return MISMATCH
    if n is not None:
        want = shard_patients(n, count, index)
        if size != len(want) or first != want.start:
            return MISMATCH
    return DONE


def part_states(directory, count: int, digest: str, n: int | None = None) -> list[str]:
    """State of every part of a sharded run: ``done``, ``missing``, ``unreadable`` or
    ``mismatch`` (another configuration's hash, or not its shard's patients)."""
    return [_part_state(part_path(directory, i, count), i, count, digest, n)
            for i in range(count)]


def run_trial_shard(base: Scenario, population=None, settings=None, *, index: int, count: int,
                    directory, options=None, simulate_fn=None, engine: dict | None = None,
                    seed: int | None = None) -> Path | None:
    """Compute shard ``index`` of ``count`` of the trial and write its part atomically.

    Parameters are those of :func:`cartsim.trial.run_trial` (``engine`` describes a non-ODE
    ``simulate_fn`` for the hash, as :func:`cartsim.run_sweep` takes it), plus the shard and
    the run's ``directory``. Returns the part's path, or None when the part is already done
    (nothing computed). Kept trajectories go to ``traj-<i>-of-<N>.nc``, written before the
    part, so a done part implies its trajectories.
    """
    from cartsim.clinical import EndpointSettings
    from cartsim.io import write_netcdf
    from cartsim.options import TrialOptions
    from cartsim.population import PopulationSpec
    from cartsim.trial import run_trial

    options = options or TrialOptions()
    settings = settings or EndpointSettings()
    population = population or PopulationSpec()
    _check_options(options)
    if seed is not None:
        base = dataclasses.replace(base, seed=int(seed))
    digest = trial_hash(trial_description(base, population, settings, options, count=count,
                                          engine=engine))
    path = part_path(directory, index, count)
    n = None if options.cohort_file is not None else int(population.n)
    if _part_state(path, index, count, digest, n) == DONE:
        return None
    if path.exists():
        warnings.warn(f"shard part {path} is unreadable or from another configuration; "
                      "recomputing it", stacklevel=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    cohort, patients = cohort_rows(base, population, options,
                                   lambda n: shard_patients(n, count, index))
    result = run_trial(base, population, settings, cohort=cohort, options=options,
                       simulate_fn=simulate_fn, first_patient=patients.start)
    stamp = {"shard_index": int(index), "shard_count": int(count),
             "shard_patients": f"{patients.start}-{patients.stop - 1}",
             "config_hash": digest}
    if result.trajectories is not None:
        traj = result.trajectories.copy()
        traj.attrs.update(stamp)
        write_netcdf(traj, part_path(directory, index, count, "traj"))
    ep = result.endpoints.copy()
    ep.attrs.update(stamp)
    return write_netcdf(ep, path)


def _refusal(directory, count: int, states: list[str],
             notes: dict[int, str] | None = None) -> str | None:
    """The one-line refusal to gather while any part is not done (None when all are);
    ``notes``: what to add after a shard's number (e.g. its missing chunks)."""
    groups = {}
    for i, s in enumerate(states):
        if s != DONE:
            groups.setdefault(s, []).append(i)
    if not groups:
        return None
    what = {MISSING: "missing", UNREADABLE: "unreadable", INCOMPLETE: "incomplete",
            MISMATCH: "made with a different config (or shard count)"}
    notes = notes or {}

    def told(s, ix):
        noted = "; ".join(f"{i}: {notes[i]}" for i in ix if i in notes)
        return (f"{'shard' if len(ix) == 1 else 'shards'} {', '.join(map(str, ix))} of "
                f"{count} {what[s]}" + (f" ({noted})" if noted else ""))

    return (f"cannot gather {Path(directory) / PARTS_DIR}: "
            f"{'; '.join(told(s, ix) for s, ix in groups.items())}; re-run the same command "
            "(with the same hydra.sweep.dir or shard.dir) to compute only those shards")


def gather_trial(directory, count: int, digest: str, *, n: int | None = None,
                 title: str | None = None, html_report: bool = False):
    """Assemble the parts of a sharded trial into one :class:`~cartsim.trial.TrialResult`.

    The endpoints (and kept trajectories) are the parts concatenated in patient order, with
    the single job's attributes (``n_patients`` the whole trial's). The endpoints are
    identical to the one job's (``xarray.Dataset.identical``: values, dtypes, coordinates,
    every attribute). Kept trajectories are equal in every variable and coordinate; their
    ``created``/``history`` stamps differ, and so does ``patient_overrides``, which
    :func:`cartsim.trial.run_trial` keeps for its first chunk only (shard 0's first chunk
    here). ``cohort`` is None (a renderer that needs scenarios re-draws them).

    Raises
    ------
    ShardError
        One line naming every shard whose part is missing, unreadable or from another
        configuration (another hash, shard count or patient range).
    """
    from cartsim.trial import TrialResult

    states = part_states(directory, count, digest, n)
    message = _refusal(directory, count, states)
    if message:
        raise ShardError(message)
    parts = [_open_part(part_path(directory, i, count)) for i in range(count)]
    ep = _concat(parts)
    traj = None
    if part_path(directory, 0, count, "traj").is_file():
        traj = _concat([_open_part(part_path(directory, i, count, "traj"))
                        for i in range(count)])
    return TrialResult(endpoints=ep, cohort=None, trajectories=traj,
                       title=title or ep.attrs.get("title", "cartsim virtual trial"),
                       html_report=html_report)


def _concat(parts: list[xr.Dataset]) -> xr.Dataset:
    """Parts in patient order as one Dataset with the single job's attributes."""
    ds = xr.concat(parts, dim="patient", combine_attrs="override") if len(parts) > 1 \
        else parts[0]
    index = ds["patient"].values
    if not np.array_equal(index, np.arange(index.size)):
        raise ShardError("the shard parts do not tile patients 0..n-1 in order; delete the "
                         "shards directory and run the shards again")
    for key in SHARD_ATTRS:
        ds.attrs.pop(key, None)
    if "n_patients" in ds.attrs:
        ds.attrs["n_patients"] = int(index.size)
    return ds
