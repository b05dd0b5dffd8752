"""Schema dataclasses from plain values: a mapping, an OmegaConf ``DictConfig`` or a dataclass.

:func:`build` is the one conversion behind :func:`cartsim.config.load_config` (a composed
config), :func:`cartsim.config.to_run_config` and :func:`cartsim.simulate` handed a dict or
a ``DictConfig``: unknown keys are rejected with the accepted ones named, types are checked
by merging onto the schema as an OmegaConf structured config, values by the dataclasses'
``__post_init__``, and ``model.params`` against the bounds of the model's parameter set.

It needs OmegaConf (structured merging) but not Hydra, and it sits beside
:mod:`cartsim.simulation`, below the config loader (:mod:`cartsim.config`, which composes
``conf/`` with Hydra): so ``simulate(dict)`` never climbs to the app edge.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from cartsim.scenario import Scenario, ScenarioError

__all__ = ["ConfigError", "build", "flatten_message", "scenario_fields", "to_scenario"]


class ConfigError(ScenarioError):
    """The configuration could not be composed (unknown key or option, wrong type)."""


def to_scenario(cfg: Any) -> Scenario:
    """Convert a DictConfig, a mapping or a Scenario to a validated, plain :class:`Scenario`.

    A mapping may hold only Scenario keys (an unknown key is an error that names it and
    the accepted keys); a DictConfig typed by a subclass of Scenario (the ``RunConfig``
    composed from ``conf/``) is validated as that type, then its run keys (``task``,
    ``output_file``, ...) are dropped; so is an instance of such a subclass. A Scenario is
    validated again (its fields may have been changed since it was built).
    """
    if isinstance(cfg, DictConfig):
        schema = OmegaConf.get_type(cfg)
        if isinstance(schema, type) and schema is not Scenario and issubclass(schema, Scenario):
            full = build(schema, cfg)
            return Scenario(**{f.name: getattr(full, f.name)
                               for f in dataclasses.fields(Scenario)})
    if isinstance(cfg, Scenario):
        cfg = scenario_fields(cfg, Scenario)
    return build(Scenario, cfg)


def scenario_fields(obj: Any, schema: type) -> dict[str, Any]:
    """The fields of ``schema`` read from ``obj``, nested dataclasses as plain dicts."""
    return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(schema)}


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def build(schema: type, cfg: Any) -> Any:
    """Check keys, merge onto the typed schema (type checks) and instantiate (value checks)."""
    if isinstance(cfg, DictConfig):
        try:
            cfg = OmegaConf.to_container(cfg, resolve=True)
        except OmegaConfBaseException as exc:
            raise ConfigError(flatten_message(exc)) from exc
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"cannot build a {schema.__name__} from {type(cfg).__name__!r}: "
                          "expected a mapping, a DictConfig or a Scenario")
    _check_keys(schema, cfg, prefix="")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
        result = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise ConfigError(flatten_message(exc)) from exc
    _check_model_params(result)
    return result


def _check_model_params(scenario: Scenario) -> None:
    """Check ``model.params`` against the model's parameter set (names, bounds and the
    model's own constraints, e.g. alpha > beta in stein2019) when the config is built, so
    that a bad override is a :class:`~cartsim.scenario.ScenarioError` before anything runs.
    """
    if not scenario.model.params:
        return
    from cartsim.models import get_model  # lazily: importing a model loads numba
    from cartsim.parameters.base import ParameterError

    model = get_model(scenario.model.name)
    for name, value in scenario.model.params.items():
        if name not in model.parameters:
            raise ScenarioError(f"model.params.{name}={value!r} is not accepted: expected a "
                                f"parameter of model {scenario.model.name!r}: "
                                f"{', '.join(model.parameters)}")
    try:
        check = getattr(model, "parameter_vector", model.parameters.with_values)
        check(dict(scenario.model.params))
    except ParameterError as exc:
        raise ScenarioError(str(exc)) from exc


def _check_keys(schema: type, cfg: Mapping[str, Any], prefix: str) -> None:
    """Reject keys that are not fields of ``schema``, recursing into nested dataclasses."""
    hints = typing.get_type_hints(schema)
    names = [f.name for f in dataclasses.fields(schema)]
    for key, value in cfg.items():
        if key not in names:
            where = f"in {prefix.rstrip('.')}" if prefix else "at the top level"
            raise ConfigError(f"{prefix}{key} is not a known key: accepted keys {where} are "
                              f"{', '.join(names)}")
        sub = hints[key]
        if dataclasses.is_dataclass(sub) and isinstance(value, Mapping):
            _check_keys(sub, value, prefix=f"{prefix}{key}.")


def flatten_message(exc: BaseException) -> str:
    """One readable message from a Hydra/OmegaConf exception and its causes.

    Hydra's composition errors say what failed (``Could not override
    'regimen.car_dose'``); the OmegaConf error in ``__cause__`` says why
    (``Key 'car_dose' not in 'Regimen'``). For an unknown key of a schema
    dataclass the accepted keys are added.
    """
    parts: list[str] = []
    cur: BaseException | None = exc
    while cur is not None and len(parts) < 10:
        text = str(cur).strip()
        if text and text != "None" and not any(text in p for p in parts):
            parts.append(text)
        obj = getattr(cur, "object_type", None)
        key = getattr(cur, "key", None)
        if (isinstance(cur, (ConfigKeyError, ConfigAttributeError)) and isinstance(obj, type)
                and dataclasses.is_dataclass(obj)):
            names = [f.name for f in dataclasses.fields(obj)]
            if key not in names:
                parts.append(f"accepted keys in {obj.__name__} are {', '.join(names)}")
        cur = cur.__cause__
    return "\n".join(parts)
