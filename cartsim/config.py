"""Load a run configuration from ``conf/`` (Hydra) and turn it into plain objects.

This is the one library module that touches Hydra (the conversion of plain values into the
schema dataclasses is :mod:`cartsim.structured`, with OmegaConf only). Everything it
returns is a plain :class:`~cartsim.scenario.Scenario` (or :class:`RunConfig`),
so a notebook user never handles a Hydra object::

    from cartsim.config import load_config
    scenario = load_config(["product=ko", "patient.marrow_blast_pct=80"])

How validation is split
-----------------------
* **Types and keys** are checked when the config is composed: the dataclasses
  of :mod:`cartsim.scenario` are registered in Hydra's ConfigStore as the
  schema of ``conf/config.yaml`` (``config_schema``), so an unknown key
  (``regimen.car_dose=1``) or a wrong type (``regimen.car_dose_per_kg=abc``)
  in a YAML file or an override is rejected before anything runs.
* **Values** (ranges, ordering, finiteness) are checked by the dataclasses'
  ``__post_init__`` when the composed config is converted to objects; the
  :class:`~cartsim.scenario.ScenarioError` it raises reaches the caller as is.
  ``model.params`` are checked there too, against the bounds of the model's parameter
  set, and so are the options a model does not support (``stein2019`` with a cohort
  task or a stochastic engine).

The config directory (:func:`conf_dir`) is, in this order: the directory named by
the environment variable ``CARTSIM_CONF_DIR``; the repository's ``conf/`` when the
package runs from a checkout (or an editable install of one); the copy of ``conf/``
that the wheel ships as ``cartsim/_conf`` (``setup.py`` maps it there at build time).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

import cartsim
from cartsim.options import (
    EndpointSettings,
    FitOptions,
    PopulationSpec,
    SensitivityOptions,
    StochasticOptions,
    SweepSpec,
    TrialOptions,
)
from cartsim.scenario import Scenario, ScenarioError
from cartsim.shard.options import ShardOptions
from cartsim.structured import (  # re-exported: cartsim.config.ConfigError, .to_scenario
    ConfigError,
    build,
    flatten_message,
    scenario_fields,
    to_scenario,
)

__all__ = [
    "CONF_DIR_ENV",
    "ConfigError",
    "RunConfig",
    "conf_dir",
    "compose_config",
    "load_config",
    "load_run_config",
    "register_configs",
    "to_run_config",
    "to_scenario",
]

CONF_DIR_ENV = "CARTSIM_CONF_DIR"
"""Environment variable that points cartsim at another config directory."""

SCHEMA_NAME = "config_schema"
"""Name under which :class:`RunConfig` is stored in Hydra's ConfigStore."""


ENGINES = ("ode", "stochastic", "agent")
"""Accepted values of ``engine``: the deterministic ODE and the two stochastic engines."""

COHORT_TASKS = ("trial", "sweep", "sensitivity", "report")
"""Tasks that compute clinical endpoints (:func:`cartsim.endpoints`), which read variables
only the ``cd7`` model has."""


@dataclass
class RunConfig(Scenario):
    """A :class:`Scenario` plus what the command line needs to run it.

    Attributes
    ----------
    task : what ``cartsim`` does with the scenario; one of the tasks registered
        in ``cartsim.cli.TASKS`` (checked there, so adding a task is one edit).
    output_file : name of the netCDF file written into the job's output
        directory; a bare file name ending in ``.nc``.
    population : the virtual population ``task=trial`` draws its cohort from
        (``conf/population/``).
    endpoints : endpoint definitions, thresholds and the death model (``conf/endpoints/``).
    trial : how ``task=trial`` runs and what it writes.
    engine : ``ode`` (deterministic, the default), ``stochastic`` (exact/tau-leap hybrid
        of the same reaction network) or ``agent`` (clonal CAR-T agents); see
        :mod:`cartsim.stochastic`.
    stochastic : options of the stochastic and agent engines (``conf/stochastic/``).
    data : observed data file (long NONMEM-like CSV) that ``task=fit`` fits; null otherwise.
    fit : what ``task=fit`` estimates and how (``conf/fit/``).
    sweep : what ``task=sweep`` varies (``conf/sweep/``, e.g. ``sweep=dose_vs_burden``).
    sensitivity : what ``task=sensitivity`` analyses (``conf/sensitivity/``).
    shard : how ``task=trial``, ``sweep`` or ``sensitivity`` is split into shard jobs
        (:mod:`cartsim.shard`).
    """

    task: str = "simulate"
    output_file: str = "simulation.nc"
    population: PopulationSpec = dataclasses.field(default_factory=PopulationSpec)
    endpoints: EndpointSettings = dataclasses.field(default_factory=EndpointSettings)
    trial: TrialOptions = dataclasses.field(default_factory=TrialOptions)
    engine: str = "ode"
    stochastic: StochasticOptions = dataclasses.field(default_factory=StochasticOptions)
    data: str | None = None
    fit: FitOptions = dataclasses.field(default_factory=FitOptions)
    sweep: SweepSpec = dataclasses.field(default_factory=SweepSpec)
    sensitivity: SensitivityOptions = dataclasses.field(default_factory=SensitivityOptions)
    shard: ShardOptions = dataclasses.field(default_factory=ShardOptions)

    def __post_init__(self) -> None:
        parent_check = getattr(super(), "__post_init__", None)
        if parent_check is not None:
            parent_check()
        if self.engine not in ENGINES:
            raise ScenarioError(f"engine={self.engine!r} is not accepted: expected one of "
                                f"{', '.join(ENGINES)}")
        ok = (isinstance(self.output_file, str) and self.output_file.endswith(".nc")
              and self.output_file not in (".nc", ".", "..")
              and os.path.basename(self.output_file) == self.output_file
              and "\\" not in self.output_file)
        if not ok:
            raise ScenarioError(f"output_file={self.output_file!r} is not accepted: expected "
                                "a bare file name ending in .nc (it is written into the "
                                "job's output directory)")
        if self.model.name != "cd7":
            if self.engine != "ode":
                raise ScenarioError(f"engine={self.engine!r} is not accepted with "
                                    f"model={self.model.name}: expected engine=ode (the "
                                    "stochastic and agent engines simulate the cd7 reaction "
                                    "network), or model=cd7")
            if self.task in COHORT_TASKS:
                raise ScenarioError(f"task={self.task!r} is not accepted with "
                                    f"model={self.model.name}: expected model=cd7 (the "
                                    "endpoints of a trial, sweep or report need the blasts, "
                                    "T cells and cytokines of the cd7 model), or task=simulate "
                                    "or task=fit")

    def scenario(self) -> Scenario:
        """The :class:`Scenario` part of this run config (shares the sub-objects)."""
        return Scenario(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Scenario)})


def conf_dir() -> Path:
    """Absolute path of the config directory.

    The first of: ``$CARTSIM_CONF_DIR`` (an error if it holds no ``config.yaml``: a
    directory the user named is never silently replaced); ``<repo>/conf`` when the
    package is imported from a repository checkout (``conf/config.yaml`` and
    ``pyproject.toml`` beside the ``cartsim`` package); ``cartsim/_conf``, the copy of
    ``conf/`` an installed wheel carries.

    Raises
    ------
    ConfigError
        If ``$CARTSIM_CONF_DIR`` names a directory without ``config.yaml``, or neither a
        checkout's nor the packaged config directory exists.
    """
    env = os.environ.get(CONF_DIR_ENV)
    if env:
        path = Path(env).expanduser().resolve()
        if not (path / "config.yaml").is_file():
            raise ConfigError(f"config directory {str(path)!r} (from ${CONF_DIR_ENV}={env!r}) "
                              f"has no config.yaml: set {CONF_DIR_ENV} to a directory holding "
                              "cartsim's conf/ tree")
        return path
    package = Path(cartsim.__file__).resolve().parent
    checkout, packaged = package.parent / "conf", package / "_conf"
    if (checkout / "config.yaml").is_file() and (package.parent / "pyproject.toml").is_file():
        return checkout
    if (packaged / "config.yaml").is_file():
        return packaged
    raise ConfigError(f"no config directory: neither {str(checkout)!r} (a repository checkout) "
                      f"nor {str(packaged)!r} (an installed wheel) has config.yaml; set "
                      f"{CONF_DIR_ENV} to a directory holding cartsim's conf/ tree")


def register_configs() -> None:
    """Store the schema in Hydra's ConfigStore (idempotent).

    ``conf/config.yaml`` names ``config_schema`` first in its defaults list, so
    every group option and override is merged onto the typed :class:`RunConfig`.
    """
    ConfigStore.instance().store(name=SCHEMA_NAME, node=RunConfig)


def compose_config(overrides: Sequence[str] | None = None, config_name: str = "config",
                   return_hydra_config: bool = False) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with command-line style overrides.

    Re-entrant: it can be called any number of times in one process, also while
    a Hydra app or another ``initialize`` context holds the global Hydra state,
    which is restored afterwards.

    Raises
    ------
    ConfigError
        If the overrides or the YAML files do not fit the schema (unknown key
        or group option, wrong type, bad override syntax).
    """
    register_configs()
    path = conf_dir()
    gh = GlobalHydra.instance()
    saved = gh.hydra if gh.is_initialized() else None
    gh.clear()
    try:
        with initialize_config_dir(config_dir=str(path), job_name="cartsim", version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides or []),
                           return_hydra_config=return_hydra_config)
    except OverrideParseException as exc:
        raise ConfigError(f"{_bad_override(overrides)}{flatten_message(exc)}") from exc
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(flatten_message(exc)) from exc
    finally:
        GlobalHydra.instance().hydra = saved


def load_run_config(overrides: Sequence[str] | None = None,
                    config_name: str = "config") -> RunConfig:
    """Compose the config (see :func:`compose_config`) and return a validated :class:`RunConfig`."""
    return to_run_config(compose_config(overrides, config_name))


def load_config(overrides: Sequence[str] | None = None, config_name: str = "config") -> Scenario:
    """Compose the config and return a validated, plain :class:`Scenario`.

    Parameters
    ----------
    overrides : Hydra overrides as on the command line, e.g.
        ``["product=ko", "regimen.car_dose_per_kg=5e5"]``.
    config_name : primary config in the config directory (without ``.yaml``).

    Raises
    ------
    ConfigError
        Unknown key, unknown group option or wrong type (at composition).
    ScenarioError
        A value outside what the scenario accepts (from ``__post_init__``).
    """
    return load_run_config(overrides, config_name).scenario()


def to_run_config(cfg: Any) -> RunConfig:
    """Convert a DictConfig, a mapping or a Scenario to a validated :class:`RunConfig`.

    A Scenario gets the default ``task`` and ``output_file``.
    """
    if isinstance(cfg, Scenario):
        cfg = scenario_fields(cfg, type(cfg))
    result = build(RunConfig, cfg)
    assert isinstance(result, RunConfig)
    return result


def _bad_override(overrides: Sequence[str] | None) -> str:
    """``"in override 'X': "`` for the first override that does not parse, else ``""``."""
    parser = OverridesParser.create()
    for text in overrides or []:
        try:
            parser.parse_override(text)
        except Exception:  # any parse failure marks the culprit
            return f"in override {text!r}: "
    return ""
