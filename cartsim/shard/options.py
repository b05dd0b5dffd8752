"""Options of a sharded run (``shard.*``): one trial, sweep or sensitivity analysis split into
jobs that each compute a slice.

``cartsim -m task=trial population.n=100000 shard.count=16 'shard.index=range(0,16)'`` runs
16 Hydra launcher jobs (joblib, ``submitit_local``, ``submitit_slurm``); job ``i`` computes
patients ``[i n / 16, (i + 1) n / 16)`` and writes one part file, and the job that completes
the last missing part gathers them into the trial's files (:mod:`cartsim.shard.trial`).
With ``task=sweep`` or ``task=sensitivity``, job ``i`` computes chunks ``[i K / 16, (i + 1)
K / 16)`` of the run's ``K`` chunks into a shared chunk store (:mod:`cartsim.shard.sweep`).
"""

from __future__ import annotations

from dataclasses import dataclass

from cartsim.scenario import ScenarioError

__all__ = ["ShardOptions"]


@dataclass
class ShardOptions:
    """How a trial, sweep or sensitivity analysis is split into shards, and which one this
    job computes.

    Attributes
    ----------
    count : shards the run is split into (1: one job, no part files). Every job of a
        sharded run and its gather must use the same count.
    index : the shard this job computes, ``0..count-1`` (a multirun sweeps it:
        ``'shard.index=range(0,N)'``); null with ``count > 1``: gather the parts already
        written into the run's files (refused while any part is missing).
    dir : the directory of the sharded run: parts in ``<dir>/shards/`` (a sweep's chunks in
        ``<dir>/sweep_chunks/`` or ``sweep.resume_dir``, a sensitivity analysis's in
        ``<dir>/sensitivity_chunks/``), the gathered files in ``<dir>/``; null =
        ``hydra.sweep.dir`` in a multirun (required otherwise).
    gather : the job that completes the last missing part gathers them at once (false:
        gather with a separate ``shard.index=null`` run).
    """

    count: int = 1
    index: int | None = None
    dir: str | None = None
    gather: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.count, int) and not isinstance(self.count, bool)
                and self.count >= 1):
            raise ScenarioError(f"shard.count={self.count!r} is not accepted: expected an "
                                "integer >= 1 (the number of shards)")
        if self.index is not None and not (isinstance(self.index, int)
                                           and not isinstance(self.index, bool)
                                           and 0 <= self.index < self.count):
            raise ScenarioError(f"shard.index={self.index!r} is not accepted with shard.count="
                                f"{self.count}: expected an integer in 0..{self.count - 1}, or "
                                "null to gather the parts")
        if self.dir is not None and not str(self.dir).strip():
            raise ScenarioError("shard.dir='' is not accepted: expected a directory, or null "
                                "for hydra.sweep.dir in a multirun")

    @property
    def sharded(self) -> bool:
        """True when the run is split into several shards (``count > 1``)."""
        return self.count > 1
