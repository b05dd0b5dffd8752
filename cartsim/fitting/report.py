"""Parameter tables of a fit: rows with units and sources, a CSV and a printed summary."""

from __future__ import annotations

import csv
import io
import math

from cartsim.fitting.data import ANALYTES

__all__ = ["format_table", "parameter_rows", "parameter_csv"]


def _unit_and_source(fit, name: str) -> tuple[str, str]:
    fm = fit._fm
    if name in fm.scenario_fields:
        return fm.parameter_unit(name), (f"estimated patient-level {fm.scenario_fields[name].key}"
                                         f" (start: the patient's value); bounds: "
                                         f"{fm.spec(name).source}")
    if name in fm.observation_fields:
        return fm.parameter_unit(name), (f"estimated per patient, observation only (start: "
                                         f"the model's constant); {fm.spec(name).source}")
    if name in fm.model.parameters:
        return fm.parameter_unit(name), f"estimated; prior/default: {fm.spec(name).source}"
    if name.startswith("sigma_prop_"):
        return "1", "estimated: SD of ln(observation)"
    if name.startswith("sigma_add_"):
        return ANALYTES[name[len("sigma_add_"):]].units, "estimated: additive error SD"
    return "", ""


def parameter_rows(fit) -> list[dict]:
    """One row per estimated quantity: name, kind, estimate, unit, se, rse_pct, ci_low, ci_high
    (Wald, or profile-likelihood where computed), and for a population fit the
    random-effect SD ``omega`` and its se."""
    rows = []
    ci = getattr(fit, "ci_", {})
    pci = getattr(fit, "profile_ci_", {})
    omega = getattr(fit, "omega_", {})
    for name, value in fit.params_.items():
        unit, source = _unit_and_source(fit, name)
        se = fit.se_.get(name, math.nan)
        lo, hi = pci.get(name, ci.get(name, (math.nan, math.nan)))
        rows.append({
            "name": name,
            "kind": "residual" if name.startswith("sigma_") else "fixed",
            "estimate": value, "unit": unit, "se": se,
            "rse_pct": 100 * se / abs(value) if value else math.nan,
            "ci_low": lo, "ci_high": hi,
            "ci_method": "profile" if name in pci else ("wald" if name in ci else ""),
            "omega": omega.get(name, math.nan),
            "omega_se": fit.se_.get(f"omega_{name}", math.nan),
            "source": source,
        })
    for name, value in getattr(fit, "sigma_fixed_", {}).items():
        rows.append({"name": name, "kind": "residual", "estimate": value, "unit": "1",
                     "se": math.nan, "rse_pct": math.nan, "ci_low": math.nan,
                     "ci_high": math.nan, "ci_method": "", "omega": math.nan,
                     "omega_se": math.nan, "source": "fixed (fit.sigma_fixed), not estimated"})
    return rows


def parameter_csv(fit) -> str:
    """:func:`parameter_rows` as CSV text."""
    rows = parameter_rows(fit)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def format_table(fit) -> str:
    """A fixed-width summary of the fit for the terminal."""
    kind = "population (SAEM)" if hasattr(fit, "omega_") else "individual (ML)"
    head = (f"cartsim fit: {kind}, model {fit._fm.model_name}, {fit.n_obs_} observations "
            f"({fit.n_censored_} below LLOQ), status {fit.status_}\n"
            f"log-likelihood {fit.loglik_:.4g}  AIC {fit.aic_:.4g}  BIC {fit.bic_:.4g}\n")
    lines = [f"{'parameter':<30}{'estimate':>12} {'unit':<12}{'RSE%':>7}  {'95% CI':<25}"
             f"{'omega':>8}"]
    for r in parameter_rows(fit):
        ci = f"[{r['ci_low']:.4g}, {r['ci_high']:.4g}]"
        om = f"{r['omega']:.3g}" if math.isfinite(r["omega"]) else ""
        lines.append(f"{r['name']:<30}{r['estimate']:>12.5g} {r['unit']:<12}"
                     f"{r['rse_pct']:>7.1f}  {ci:<25}{om:>8}")
    return head + "\n".join(lines)
