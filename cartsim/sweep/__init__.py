"""Parameter sweeps, gathering of multiruns and global sensitivity.

* :func:`run_sweep` - a dense sweep (grid, Latin hypercube or Sobol sequence; optionally a
  virtual population per point) as compiled parallel batches in resumable chunks, one
  Dataset (``cartsim task=sweep``);
* :func:`gather` - a Hydra multirun gathered into one Dataset (``cartsim gather DIR``);
* :func:`run_sensitivity` - Sobol and Morris indices with SALib (``cartsim task=sensitivity``);
* :class:`SweepSpec`, :class:`SweepAxis`, :class:`SensitivityOptions` - the options.

Submodules are imported lazily so that ``import cartsim.sweep`` (done by the config schema)
stays light.
"""

from __future__ import annotations

from cartsim._lazy import lazy_exports
from cartsim.sweep.options import SensitivityOptions, SweepAxis, SweepSpec

_LAZY = {
    "run_sweep": ("cartsim.sweep.run", "run_sweep"),
    "plan_sweep": ("cartsim.sweep.run", "plan_sweep"),
    "gather": ("cartsim.sweep.gather", "gather"),
    "write_gathered": ("cartsim.sweep.gather", "write_gathered"),
    "run_sensitivity": ("cartsim.sweep.sensitivity", "run_sensitivity"),
    "sensitivity_design": ("cartsim.sweep.sensitivity", "sensitivity_design"),
    "sensitivity_indices": ("cartsim.sweep.sensitivity", "sensitivity_indices"),
    "available_endpoints": ("cartsim.sweep.endpoints", "available_endpoints"),
    "accepted_names": ("cartsim.sweep.axes", "accepted_names"),
    "GatherCallback": ("cartsim.sweep.callback", "GatherCallback"),
}

__all__ = ["SensitivityOptions", "SweepAxis", "SweepSpec", *_LAZY]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, eager=__all__)
