"""One trial, sweep or sensitivity analysis split into shards that run as separate jobs, and
gathered into one result.

* :class:`ShardOptions` - ``shard.count``, ``shard.index``, ``shard.dir`` (config key
  ``shard``);
* :func:`run_trial_shard` - compute one shard's patients and write its part file;
* :func:`gather_trial` - check every part and assemble the trial (identical to one job's);
* :func:`run_sweep_shard`, :func:`gather_sweep`, :func:`run_sensitivity_shard`,
  :func:`gather_sensitivity` - the same for a sweep's or a sensitivity design's chunks.

See :mod:`cartsim.shard.trial` and :mod:`cartsim.shard.sweep` for the layouts and the
guarantees. Submodules are imported lazily so that ``import cartsim.shard`` (done by the
config schema) stays light.
"""

from __future__ import annotations

from cartsim._lazy import lazy_exports
from cartsim.shard.options import ShardOptions

_LAZY = {
    "run_trial_shard": ("cartsim.shard.trial", "run_trial_shard"),
    "gather_trial": ("cartsim.shard.trial", "gather_trial"),
    "shard_patients": ("cartsim.shard.trial", "shard_patients"),
    "part_states": ("cartsim.shard.trial", "part_states"),
    "ShardError": ("cartsim.shard.trial", "ShardError"),
    "run_sweep_shard": ("cartsim.shard.sweep", "run_sweep_shard"),
    "gather_sweep": ("cartsim.shard.sweep", "gather_sweep"),
    "run_sensitivity_shard": ("cartsim.shard.sweep", "run_sensitivity_shard"),
    "gather_sensitivity": ("cartsim.shard.sweep", "gather_sensitivity"),
}

__all__ = ["ShardOptions", *_LAZY]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, eager=__all__)
