"""A sweep or a sensitivity analysis split into shards: each job computes a slice of chunks.

A sweep's points are evaluated in chunks of ``chunk_size`` patients (:mod:`cartsim.sweep.run`)
and every completed chunk is written atomically into a chunk store
(:mod:`cartsim.sweep.store`). A sharded run shares one store between its jobs: shard ``i``
of ``N`` computes the chunks ``[i K // N, (i + 1) K // N)`` of the run's ``K`` chunks
(:func:`shard_chunks`) into it, then writes its record; the gather loads every chunk and
builds the result with the same code as one job. Layout of the run's directory ``DIR``
(``shard.dir``, by default the multirun's ``hydra.sweep.dir``)::

    DIR/sweep_chunks/sweep_spec.json, chunk_000000.nc, ...   the shared chunk store
        (``sweep.resume_dir`` when set; ``DIR/sensitivity_chunks/`` for a sensitivity analysis)
    DIR/shards/part-0000-of-0004.json    shard 0's record: its chunks, the hash, the errors
    DIR/sweep.nc  or  DIR/sensitivity.nc (and sensitivity.png)          (gathered)

Same numbering, same random streams: the points are listed once for the whole run
(:func:`cartsim.sweep.run.prepare_sweep`; the Latin hypercube, Sobol or Saltelli design is
drawn from the run seed in every shard, the same rows), a chunk holds the same points
whichever job computes it, and a point's cohort and death draws are keyed by the run seed
and the patient's index within the point (a stochastic engine's streams by the global
patient index), never by the job. So the gathered Dataset equals the one job's: every
variable, coordinate and attribute (``xarray.Dataset.identical``) except the provenance
stamps that differ between any two runs: ``created`` and ``chunk_dir``
(``tests/sweep/test_sweep_shard.py``).

A shard is *done* when its record opens, carries this run's hash, shard count and chunk
range, and every chunk it holds is in the store (a chunk whose evaluation raised is listed
in the record's ``errors`` instead, as one job lists it). Re-running a shard that is done
does nothing; one that is not done computes only its chunks missing from the store, so a
failed or killed shard is re-run alone and a half-finished one resumes. The gather refuses,
in one line naming the shards and their missing chunks, while any shard is not done or any
chunk file is unreadable or of another configuration.

As in one job, an exception in the first chunk a shard evaluates is raised (most likely a
setup error every chunk would repeat): that shard fails, writes no record, and the gather
refuses until it has run.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from cartsim.scenario import Scenario
from cartsim.shard.trial import (
    DONE,
    INCOMPLETE,
    MISMATCH,
    MISSING,
    UNREADABLE,
    ShardError,
    _refusal,
    part_path,
    shard_slice,
)

__all__ = ["CHUNK_DIRS", "DONE", "chunk_directory", "gather_points", "gather_sensitivity",
           "gather_sweep", "points_states", "record_path", "run_points_shard",
           "run_sensitivity_shard", "run_sweep_shard", "shard_chunks"]

CHUNK_DIRS = {"sweep": "sweep_chunks", "sensitivity": "sensitivity_chunks"}
"""The shared chunk store of a sharded run, under its directory (as one job's task names it
under its output directory)."""

_SIZE_KEY = {"sweep": "sweep.chunk_size", "sensitivity": "sensitivity.chunk_size"}


def shard_chunks(n_chunks: int, count: int, index: int, kind: str = "sweep") -> range:
    """Chunks of shard ``index`` of ``count``: ``range(index K // count, (index + 1) K //
    count)`` of the run's ``K`` chunks; the ranges tile ``0..K-1`` in order."""
    return shard_slice(n_chunks, count, index, "chunk",
                       hint=f"lower {_SIZE_KEY.get(kind, 'chunk_size')} (patients per chunk) "
                            "or shard.count")


def chunk_directory(kind: str, directory, spec=None) -> Path:
    """The shared chunk store of a sharded ``kind`` run in ``directory``: ``sweep.resume_dir``
    when a sweep sets it, else ``<directory>/sweep_chunks`` or ``sensitivity_chunks``."""
    if kind not in CHUNK_DIRS:
        raise ValueError(f"kind={kind!r}: expected one of {', '.join(CHUNK_DIRS)}")
    if kind == "sweep" and spec is not None and spec.resume_dir:
        return Path(spec.resume_dir).expanduser()
    return Path(directory) / CHUNK_DIRS[kind]


def record_path(directory, index: int, count: int) -> Path:
    """``<directory>/shards/part-<index>-of-<count>.json``: shard ``index``'s record."""
    return part_path(directory, index, count, suffix=".json")


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _state(job, directory, chunk_dir, index: int, count: int, kind: str = "sweep"
           ) -> tuple[str, str, dict | None]:
    """(state, note, record) of shard ``index``: the state of :data:`cartsim.shard.trial`,
    a note naming the missing chunks of an incomplete shard."""
    from cartsim.sweep.store import chunk_path, span_text

    path = record_path(directory, index, count)
    if not path.is_file():
        return MISSING, "", None
    record = _read_record(path)
    if record is None:
        return UNREADABLE, "", None
    chunks = shard_chunks(job.n_chunks, count, index, kind)
    if (record.get("config_hash") != job.hash or record.get("shard_count") != count
            or record.get("shard_index") != index
            or record.get("chunks") != [chunks.start, chunks.stop]):
        return MISMATCH, "", record
    failed = {int(e["chunk"]) for e in record.get("errors", [])}
    gone = [k for k in chunks if k not in failed and not chunk_path(chunk_dir, k).is_file()]
    if gone:
        return INCOMPLETE, f"chunks {span_text(gone)} not in {chunk_dir}", record
    return DONE, "", record


def points_states(job, directory, count: int, chunk_dir, kind: str = "sweep") -> list[str]:
    """State of every shard of a sharded sweep or sensitivity run: ``done``, ``missing``
    (no record), ``unreadable``, ``mismatch`` (another configuration, shard count or chunk
    range) or ``incomplete`` (a chunk file of the shard is not in the store)."""
    return [_state(job, directory, chunk_dir, i, count, kind)[0] for i in range(count)]


def run_points_shard(job, *, index: int, count: int, directory, chunk_dir, kind: str = "sweep",
                     simulate_fn=None, progress=None) -> Path | None:
    """Compute shard ``index`` of ``count`` of a prepared sweep or sensitivity ``job``
    (:class:`~cartsim.sweep.run.PointsJob`) into the shared ``chunk_dir``, then write its
    record atomically into ``directory``.

    Returns the record's path, or None when the shard was already done (nothing computed;
    with ``resume: false`` on a sweep, or a chunk that raised, it is computed again).

    Raises
    ------
    ShardError
        ``chunk_dir`` holds another configuration's chunks (every shard of a run must be
        composed with the same overrides).
    """
    from cartsim.io import write_text
    from cartsim.sweep.store import ChunkStore, SweepMismatchError

    chunks = shard_chunks(job.n_chunks, count, index, kind)
    try:  # the shared store says which configuration the run is (written by its first job)
        ChunkStore(chunk_dir, job.description)
    except SweepMismatchError:
        raise ShardError(f"cannot compute shard {index} of {count}: {chunk_dir} holds chunks "
                         "of a different configuration; every shard of a run needs the same "
                         "overrides (or use another hydra.sweep.dir or shard.dir)") from None
    state, _, record = _state(job, directory, chunk_dir, index, count, kind)
    if state == DONE and job.resume and not record.get("errors"):
        return None
    if state in (UNREADABLE, MISMATCH):
        warnings.warn(f"shard record {record_path(directory, index, count)} is unreadable or "
                      "from another configuration; recomputing the shard", stacklevel=2)
    ds = job.evaluate(chunk_dir=chunk_dir, simulate_fn=simulate_fn, progress=progress,
                      chunks=chunks)
    record = {"kind": kind, "config_hash": job.hash, "shard_index": int(index),
              "shard_count": int(count), "chunks": [chunks.start, chunks.stop],
              "points": [chunks.start * job.per_chunk,
                         min(job.plan.n_points, chunks.stop * job.per_chunk)],
              "errors": json.loads(ds.attrs.get("errors", "[]"))}
    path = record_path(directory, index, count)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(json.dumps(record, indent=1), path)


def gather_points(job, *, count: int, directory, chunk_dir, kind: str = "sweep",
                  progress=None):
    """Load every chunk of a sharded run and build its result with ``job.finish`` (the one
    job's Dataset; see the module docstring for what is identical).

    Raises
    ------
    ShardError
        One line naming every shard that is not done (no record, unreadable, another
        configuration, or chunks missing from the store) and, when a chunk file does not
        load (unreadable, another configuration's), the shards that hold those chunks.
    """
    from cartsim.sweep.store import MissingChunksError, span_text

    shard_chunks(job.n_chunks, count, 0, kind)  # a count the run cannot have: its own error
    states = [_state(job, directory, chunk_dir, i, count, kind) for i in range(count)]
    notes = {i: note for i, (_, note, _) in enumerate(states) if note}
    message = _refusal(directory, count, [s for s, _, _ in states], notes)
    if message:
        raise ShardError(message)
    known = [e for _, _, record in states for e in record.get("errors", [])]
    try:
        ds = job.evaluate(chunk_dir=chunk_dir, progress=progress, load_only=True,
                          known_errors=known)
    except MissingChunksError as exc:
        owners = {}
        for i in range(count):
            mine = [k for k in exc.chunks if k in shard_chunks(job.n_chunks, count, i)]
            if mine:
                owners[i] = f"chunks {span_text(mine)} unreadable or of another config"
        raise ShardError(_refusal(directory, count,
                                  [INCOMPLETE if i in owners else DONE for i in range(count)],
                                  owners)) from None
    return job.finish(ds)


def run_sweep_shard(base: Scenario, spec=None, population=None, settings=None, *, index: int,
                    count: int, directory, seed: int | None = None, simulate_fn=None,
                    group_resolver=None, engine: dict | None = None,
                    progress=None) -> Path | None:
    """Shard ``index`` of ``count`` of :func:`cartsim.sweep.run_sweep` (same parameters)
    into the run's ``directory``; see :func:`run_points_shard`."""
    from cartsim.sweep.run import prepare_sweep

    job = prepare_sweep(base, spec, population, settings, seed=seed,
                        group_resolver=group_resolver, engine=engine)
    return run_points_shard(job, index=index, count=count, directory=directory,
                            chunk_dir=chunk_directory("sweep", directory, spec),
                            simulate_fn=simulate_fn, progress=progress)


def gather_sweep(base: Scenario, spec=None, population=None, settings=None, *, count: int,
                 directory, seed: int | None = None, group_resolver=None,
                 engine: dict | None = None, progress=None):
    """The sweep Dataset of a sharded run (:func:`cartsim.sweep.run_sweep`'s, gathered);
    see :func:`gather_points`."""
    from cartsim.sweep.run import prepare_sweep

    job = prepare_sweep(base, spec, population, settings, seed=seed,
                        group_resolver=group_resolver, engine=engine)
    return gather_points(job, count=count, directory=directory,
                         chunk_dir=chunk_directory("sweep", directory, spec), progress=progress)


def run_sensitivity_shard(base: Scenario, options, population=None, settings=None, *,
                          index: int, count: int, directory, seed: int | None = None,
                          simulate_fn=None, progress=None) -> Path | None:
    """Shard ``index`` of ``count`` of :func:`cartsim.sweep.run_sensitivity`'s design into
    the run's ``directory``; see :func:`run_points_shard`."""
    from cartsim.sweep.sensitivity import prepare_sensitivity

    job = prepare_sensitivity(base, options, population, settings, seed=seed)
    return run_points_shard(job, index=index, count=count, directory=directory,
                            chunk_dir=chunk_directory("sensitivity", directory),
                            kind="sensitivity", simulate_fn=simulate_fn, progress=progress)


def gather_sensitivity(base: Scenario, options, population=None, settings=None, *,
                       count: int, directory, seed: int | None = None, progress=None):
    """The indices of a sharded sensitivity analysis (:func:`cartsim.sweep.run_sensitivity`'s
    Dataset, gathered); see :func:`gather_points`."""
    from cartsim.sweep.sensitivity import prepare_sensitivity

    job = prepare_sensitivity(base, options, population, settings, seed=seed)
    return gather_points(job, count=count, directory=directory,
                         chunk_dir=chunk_directory("sensitivity", directory),
                         kind="sensitivity", progress=progress)
