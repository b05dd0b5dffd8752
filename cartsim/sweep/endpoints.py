"""Endpoints a sweep keeps: per-patient values, derived indicators, per-point population summaries.

Per patient, a sweep reads the endpoint contract of :func:`cartsim.endpoints` and adds the
derived indicators of :data:`DERIVED` (the quantities a therapeutic window is drawn from).

With a virtual population per point, each kept endpoint is summarised over the point's
patients where it is estimable (:func:`cartsim.clinical.estimable`: solver status 0, and a
follow-up reaching the endpoint's assessment day); ``n_evaluable`` counts the solved ones:

* a boolean endpoint becomes a proportion ``X`` (units 1) with an exact Clopper-Pearson
  interval ``X_ci_lo``, ``X_ci_hi`` (Clopper & Pearson 1934 Biometrika 26:404);
* a numeric endpoint becomes the median ``X`` and quartiles ``X_q25``, ``X_q75`` over
  patients (NaN values, e.g. "never", are left out).

A point without one patient where the endpoint is estimable gets NaN, never 0. With one
patient per point (:func:`single`) every kept endpoint is stored as a number (a flag as 0/1)
and is NaN at a failed point or where it is not estimable, so a map never draws a failure
as a non-response. An endpoint not estimable anywhere (follow-up too short) carries the
reason in its ``not_estimable`` attribute.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["DERIVED", "add_derived", "available_endpoints", "select", "summarise"]

MONTH_DAYS = 365.25 / 12.0
"""Days per month (the endpoint contract's month = 30.4375 days)."""

PFS_DAY = 365.0
"""Landmark of ``pfs_12m`` (day): 12 months taken as day 365 so that the default one-year
output grid (days -5..365) reaches it."""

DERIVED: dict[str, str] = {
    "cr_d28": "CR or CRi in the marrow at day 28 (response_d28 >= 1)",
    "mrd_neg_cr_d28": "flow-MRD-negative CR/CRi at day 28 (response_d28 >= 1 and "
                      "mrd_flow_neg_d28)",
    "crs_g3plus": "SURROGATE CRS grade >= 3 (crs_grade >= 3; not an ASTCT grade)",
    "icans_g3plus": "SURROGATE ICANS grade >= 3 (icans_grade >= 3; not an ICE/ASTCT grade)",
    "pfs_12m": "progression-free at day 365 (no relapse, progression or death by day 365; "
               "needs follow-up to day 365)",
}
"""Derived per-patient indicators (booleans) a sweep can keep, name -> meaning."""


def add_derived(ep: xr.Dataset, names) -> xr.Dataset:
    """``ep`` (per-patient endpoints) with the derived indicators among ``names`` added.

    A derived indicator needs the follow-up its sources need (their ``needs_follow_up_day``
    and ``not_estimable`` attributes are carried over)."""
    from cartsim.clinical._common import FOLLOW_UP_ATTR

    new = {}
    ev = ep["evaluable"].values.astype(bool)
    for name in names:
        if name not in DERIVED or name in ep:
            continue
        source = None
        if name == "cr_d28":
            v = ep["response_d28"].values >= 1
            source = "response_d28"
        elif name == "mrd_neg_cr_d28":
            v = (ep["response_d28"].values >= 1) & ep["mrd_flow_neg_d28"].values.astype(bool)
            source = "response_d28"
        elif name == "crs_g3plus":
            v = ep["crs_grade"].values >= 3
        elif name == "icans_g3plus":
            v = ep["icans_grade"].values >= 3
        else:  # pfs_12m
            fu = float(np.max(ep["follow_up_day"].values)) if ep.sizes["patient"] else 0.0
            if fu < PFS_DAY - 1e-9:
                raise ValueError(f"endpoint pfs_12m needs follow-up to day {PFS_DAY:g}, but "
                                 f"the output grid ends at day {fu:g}: set output.t_end >= "
                                 f"{PFS_DAY:g} or drop pfs_12m from the endpoints")
            ev_day = ep["pfs_event"].values.astype(bool) & (ep["pfs_day"].values <= PFS_DAY)
            v = ~ev_day
        attrs = {"units": "1", "long_name": DERIVED[name]}
        if source is not None:
            attrs.update({k: a for k, a in ep[source].attrs.items()
                          if k in (FOLLOW_UP_ATTR, "not_estimable")})
        new[name] = ("patient", np.asarray(v, dtype=bool) & ev, attrs)
    return ep.assign(new) if new else ep


_PROBE: list[str] | None = None


def available_endpoints(settings=None) -> list[str]:
    """Names of every per-patient endpoint a sweep can keep (contract + :data:`DERIVED`).

    Found by running :func:`cartsim.endpoints` on a tiny synthetic Dataset (milliseconds),
    so the list follows the endpoint contract as it evolves.
    """
    global _PROBE
    if _PROBE is None:
        from cartsim.clinical import endpoints
        from cartsim.clinical.endpoints import REQUIRED

        t = np.array([0.0, 1.0, 2.0])
        data = {v: (("patient", "time"), np.ones((1, t.size))) for v in REQUIRED}
        data["status"] = (("patient",), np.zeros(1, dtype=np.int64))
        probe = xr.Dataset(data, coords={"time": t, "patient": [0]})
        _PROBE = [v for v in endpoints(probe, settings, seed=0).data_vars
                  if v not in ("status", "status_name", "evaluable")]
    return [*_PROBE, *[d for d in DERIVED if d not in _PROBE]]


def check_endpoints(names, key: str = "sweep.endpoints", settings=None) -> None:
    """Raise :class:`~cartsim.scenario.ScenarioError` for names that are not endpoints."""
    from cartsim.scenario import ScenarioError

    known = available_endpoints(settings)
    bad = [n for n in names if n not in known]
    if bad:
        raise ScenarioError(f"{key}={list(names)!r} is not accepted: unknown endpoint(s) "
                            f"{', '.join(bad)}; accepted: {', '.join(known)}")


def select(ep: xr.Dataset, names) -> xr.Dataset:
    """The kept endpoints (plus ``status``) of per-patient endpoints, derived ones added."""
    ep = add_derived(ep, names)
    return ep[["status", *names]]


def summarise(ep: xr.Dataset, names, n_points: int, ci_level: float = 0.95) -> xr.Dataset:
    """Per-point summaries of per-patient endpoints (dim ``patient`` -> dim ``point``).

    Parameters
    ----------
    ep : per-patient endpoints (with ``status``), the kept names present (see :func:`select`).
    names : the kept endpoints.
    n_points : number of points; the patients of a point are contiguous and every point
        has the same number of patients.
    ci_level : confidence level of the proportions' intervals.
    """
    from scipy.stats import beta

    from cartsim.clinical import estimable

    status = ep["status"].values.reshape(n_points, -1)
    ok = status == 0
    n_ok = ok.sum(axis=1)
    failed = ~ok
    first_bad = np.where(failed.any(axis=1), status[np.arange(n_points), failed.argmax(axis=1)],
                         0)
    out = {
        "status": (("point",), first_bad.astype(np.int64), {
            "units": "1", "long_name": "point status: 0 every patient solved; else the solver "
                                       "status of its first failed patient; -1 not computed"}),
        "n_evaluable": (("point",), n_ok.astype(np.int64), {
            "units": "1", "long_name": "patients of the point with a successful solve"}),
    }
    a = 1.0 - ci_level
    for name in names:
        v = ep[name].values.reshape(n_points, -1)
        attrs = dict(ep[name].attrs)
        long_name = attrs.get("long_name", name)
        units = attrs.get("units", "1")
        use = ok & estimable(ep, name).reshape(n_points, -1)
        n_use = use.sum(axis=1)
        why = {"not_estimable": attrs["not_estimable"]} if "not_estimable" in attrs else {}
        if v.dtype == bool:
            k = (v & use).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                p = np.where(n_use > 0, k / np.maximum(n_use, 1), np.nan)
                lo = np.where(k > 0, beta.ppf(a / 2, k, n_use - k + 1), 0.0)
                hi = np.where(k < n_use, beta.ppf(1 - a / 2, k + 1, n_use - k), 1.0)
            lo = np.where(n_use > 0, lo, np.nan)
            hi = np.where(n_use > 0, hi, np.nan)
            pct = f"{100 * ci_level:g}%"
            out[name] = (("point",), p, {"units": "1", "long_name": f"proportion: {long_name}",
                                         **why})
            out[f"{name}_ci_lo"] = (("point",), lo, {
                "units": "1", "long_name": f"lower {pct} Clopper-Pearson bound: {long_name}"})
            out[f"{name}_ci_hi"] = (("point",), hi, {
                "units": "1", "long_name": f"upper {pct} Clopper-Pearson bound: {long_name}"})
        else:
            x = np.where(use, v.astype(float), np.nan)
            x = np.where(x == -1, np.nan, x) if v.dtype.kind in "iu" else x
            allnan = ~np.isfinite(x).any(axis=1)
            x_safe = np.where(allnan[:, None], 0.0, x)
            q = np.nanquantile(x_safe, [0.25, 0.5, 0.75], axis=1)
            q[:, allnan] = np.nan
            for j, (suffix, what) in enumerate((("_q25", "25th percentile"), ("", "median"),
                                                ("_q75", "75th percentile"))):
                out[f"{name}{suffix}"] = (("point",), q[j], {
                    "units": units, "long_name": f"{what} over patients: {long_name}",
                    **(why if not suffix else {})})
    return xr.Dataset(out)


def single(ep: xr.Dataset, names) -> xr.Dataset:
    """Per-point values when every point is one patient (dim ``patient`` renamed ``point``).

    Every kept endpoint becomes a float (a flag 0/1, a category its code) that is NaN where
    it is not estimable (failed solve, or follow-up short of its assessment): a failed point
    is missing, not a non-response."""
    from cartsim.clinical import estimable

    ep = add_derived(ep, names)
    ds = select(ep, names)
    for name in names:
        ok = estimable(ep, name)
        v = np.asarray(ds[name].values)
        if v.dtype.kind in "biuf":
            attrs = {**ds[name].attrs, "missing": "NaN: failed solve or not estimable"}
            ds[name] = ("patient", np.where(ok, v.astype(float), np.nan), attrs)
    ds = ds.drop_vars("patient", errors="ignore").rename_dims(patient="point")
    ds.attrs = {}
    ds["status"].attrs.update({"units": "1", "long_name": "point status: solver status "
                               "(0 success, 1 max steps, 2 step-size underflow, 3 non-finite "
                               "state, 4 singular matrix); -1 not computed"})
    return ds
