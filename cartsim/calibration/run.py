"""Simulate the trial experiments and score every target: the forward model of the calibration.

One evaluation runs each experiment named by the targets once, at ``replicates`` times
its enrolled size (``population.n`` of ``conf/experiment/<experiment>.yaml``), so the
figure compared with the publication is the model's expected figure with little
Monte-Carlo noise. The seeds are fixed in the experiment configs: two evaluations that
differ only in parameter values use the same virtual patients and death draws (common
random numbers), so a search sees the parameters' effect, not sampling noise.

Two kinds of overrides reach a trial. ``overrides`` (the calibration's ``fixed`` list, the
command line) apply to every experiment as given. ``free`` values (the search's point)
are population-level defaults: an experiment that sets a key itself keeps its own value
(``population.cd7neg_clone_probability: 0.8`` of ``trial_cd7_aml`` is a fact of that
trial, not the default the other trials share); a key written ``EXPERIMENT:key`` applies
to that experiment only, so a trial-specific value can be searched too.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable, Sequence

import xarray as xr

from cartsim.calibration.likelihood import fmt_figure as _fmt
from cartsim.calibration.likelihood import score
from cartsim.calibration.statistics import statistic
from cartsim.calibration.targets import TARGETS, Target

__all__ = ["evaluate", "format_rows", "overrides_for", "run_experiment", "shipped_value",
           "simulate_trials", "simulated_values", "total_loglik"]


def run_experiment(experiment: str, overrides: Sequence[str] = (), *, replicates: float = 1,
                   n: int | None = None) -> xr.Dataset:
    """Endpoints of ``+experiment=<experiment>`` with extra Hydra ``overrides``.

    The cohort has ``n`` patients, or ``replicates`` x the experiment's ``population.n``.
    """
    from cartsim.config import load_run_config
    from cartsim.trial import run_trial

    cfg = load_run_config([f"+experiment={experiment}", *overrides])
    size = n if n is not None else max(1, round(cfg.population.n * replicates))
    population = dataclasses.replace(cfg.population, n=int(size))
    return run_trial(cfg.scenario(), population, cfg.endpoints, options=cfg.trial).endpoints


def _scope(item: str) -> tuple[str | None, str]:
    """``"exp:key=value"`` -> ``("exp", "key=value")``; ``"key=value"`` -> ``(None, ...)``."""
    head, sep, rest = item.partition(":")
    return (head, rest) if sep and "=" not in head else (None, item)


@functools.lru_cache(maxsize=64)
def _composed(experiment: str | None):
    from cartsim.config import compose_config

    return compose_config([f"+experiment={experiment}"] if experiment else [])


def _pinned(experiment: str, key: str) -> bool:
    """Whether ``conf/experiment/<experiment>.yaml`` sets ``key`` to its own value."""
    from omegaconf import OmegaConf

    path = key.lstrip("+")
    return (OmegaConf.select(_composed(experiment), path, default=None)
            != OmegaConf.select(_composed(None), path, default=None))


def overrides_for(experiment: str, overrides: Sequence[str] = (),
                  free: Sequence[str] = ()) -> list[str]:
    """The overrides one experiment runs with (see the module docstring for the rules)."""
    out = list(overrides)
    for item in free:
        scope, kv = _scope(item)
        if scope == experiment or (scope is None and not _pinned(experiment,
                                                                 kv.split("=", 1)[0])):
            out.append(kv)
    return out


def shipped_value(key: str, overrides: Sequence[str] = ()) -> float:
    """The value a Hydra override ``key`` has without the override: the shipped default.

    ``model.params.<name>`` (with or without ``+``) reads the model's parameter set unless the
    config sets it; any other key reads the composed config (``population.n``,
    ``endpoints.death.aplasia_hazard_per_day``, ...). ``EXPERIMENT:key`` reads the value
    in that experiment.
    """
    from omegaconf import OmegaConf

    from cartsim.config import compose_config
    from cartsim.models import get_model

    scope, key = _scope(key + "=")
    key = key[:-1]
    cfg = compose_config([*([f"+experiment={scope}"] if scope else []), *overrides])
    path = key.lstrip("+")
    value = OmegaConf.select(cfg, path, default=None)
    params = get_model(cfg.model.name).parameters
    name = path.split(".", 2)[-1]
    if value is None and path.startswith("model.params.") and name in params:
        value = params[name].value
    if value is None:
        raise KeyError(f"{key!r} is neither a config key nor a model parameter of "
                       f"{cfg.model.name!r}")
    return float(value)


def simulate_trials(overrides: Sequence[str] = (), *, free: Sequence[str] = (),
                    replicates: float = 5, experiments: Iterable[str] | None = None,
                    targets: Sequence[Target] = TARGETS) -> dict[str, xr.Dataset | Exception]:
    """Endpoints of every experiment of ``targets`` (or of ``experiments``).

    ``overrides`` apply to every experiment; ``free`` values as :func:`overrides_for` says.

    A failed experiment (a value the scenario rejects, a solver failure) is returned as
    its exception, so one bad parameter set is a status of the search, not a crash.
    """
    names = experiments if experiments is not None else dict.fromkeys(
        t.experiment for t in targets)
    out: dict[str, xr.Dataset | Exception] = {}
    for name in names:
        try:
            out[name] = run_experiment(name, overrides_for(name, overrides, free),
                                       replicates=replicates)
        except Exception as err:  # noqa: BLE001 - reported as the experiment's status
            out[name] = err
    return out


def simulated_values(eps: dict, targets: Sequence[Target] = TARGETS) -> dict[str, tuple]:
    """Target key -> ``(simulated figure, simulated denominator)`` (NaN, 0 where it failed)."""
    vals = {}
    for t in targets:
        ep = eps.get(t.experiment)
        vals[t.key] = ((math.nan, 0) if ep is None or isinstance(ep, Exception)
                       else statistic(ep, t.statistic, t.day))
    return vals


def evaluate(overrides: Sequence[str] = (), *, free: Sequence[str] = (),
             replicates: float = 5, targets: Sequence[Target] = TARGETS) -> list[dict]:
    """Simulate every trial once and score each target (rows of :func:`score`)."""
    eps = simulate_trials(overrides, free=free, replicates=replicates, targets=targets)
    vals = simulated_values(eps, targets)
    rows = [score(t, *vals[t.key]) for t in targets]
    for r in rows:
        err = eps.get(r["experiment"])
        r["error"] = f"{type(err).__name__}: {err}" if isinstance(err, Exception) else ""
    return rows


def total_loglik(rows: Iterable[dict]) -> float:
    """The calibration objective: the sum of the targets' log-likelihoods."""
    return float(sum(r["loglik"] for r in rows))


def format_rows(rows: Sequence[dict]) -> str:
    """A plain-text table: observed, its 95% interval, simulated, z, inside."""
    lines = [f"{'trial':<18} {'target':<44} {'observed':<32} {'95% interval':<18} "
             f"{'simulated':>10} {'z':>6}  in"]
    for r in rows:
        lines.append(f"{r['trial']:<18} {r['name'][:44]:<44} {r['observed_label'][:32]:<32} "
                     f"{_fmt(r['lo']) + '-' + _fmt(r['hi']):<18} {_fmt(r['simulated']):>10} "
                     f"{r['z']:>6.2f}  {'yes' if r['inside'] else 'NO'}")
    z = [abs(r["z"]) if math.isfinite(r["z"]) else math.inf for r in rows]
    failed = {r["experiment"]: r["error"] for r in rows if r.get("error")}
    lines += [f"{name} FAILED: {err}" for name, err in failed.items()]
    lines.append(f"{sum(r['inside'] for r in rows)}/{len(rows)} inside the observed 95% "
                 f"interval; |z| > 2: {sum(v > 2 for v in z)}, |z| > 3: {sum(v > 3 for v in z)}; "
                 f"log-likelihood {total_loglik(rows):.2f}")
    return "\n".join(lines)
