"""Hydra callback that gathers a multirun into one Dataset when the last job has finished.

Enable it with ``hydra/callbacks=gather`` on the command line (``conf/hydra/callbacks/
gather.yaml``), or for every multirun by adding ``- hydra/callbacks: gather`` to the defaults
list of ``conf/config.yaml``::

    cartsim -m product=nanobody,ns7car,ko regimen=flu_cy_low,flu_cy_high hydra/callbacks=gather

``on_multirun_end`` runs in the launching process after the launcher has returned (also for
the joblib and submitit launchers, which wait for their jobs), so every finished job is there;
missing ones are reported, not fatal (see :func:`cartsim.sweep.gather.gather`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.experimental.callback import Callback

__all__ = ["GatherCallback"]


class GatherCallback(Callback):
    """Gather ``hydra.sweep.dir`` at the end of a multirun.

    Parameters
    ----------
    format : ``netcdf`` (``gathered.nc``) or ``zarr`` (``gathered.zarr``).
    file : result file of each job (default: the file its task writes).
    """

    def __init__(self, format: str = "netcdf", file: str | None = None) -> None:  # noqa: A002
        if format not in ("netcdf", "zarr"):
            raise ValueError(f"hydra.callbacks.gather.format={format!r} is not accepted: "
                             "expected netcdf or zarr")
        self.format = format
        self.file = file

    def on_multirun_end(self, config, **kwargs) -> None:
        from cartsim.sweep.gather import gather_and_write, summary_line

        sweep_dir = Path(str(config.hydra.sweep.dir))
        if (config.get("shard") or {}).get("count", 1) > 1:  # its jobs gather (cartsim.shard)
            from cartsim.tasks.shard import report_sharded_multirun

            report_sharded_multirun(config.shard, sweep_dir, str(config.get("task")))
            return
        try:
            ds, path = gather_and_write(sweep_dir, file=self.file, fmt=self.format)
        except Exception as exc:  # the jobs' own files stay; report, don't crash the launcher
            print(f"cartsim: gather of {sweep_dir} failed: {type(exc).__name__}: {exc}; run "
                  f"`cartsim gather {sweep_dir}` to retry", file=sys.stderr, flush=True)
            return
        print(f"cartsim: gathered {path}: {summary_line(ds)}", flush=True)
