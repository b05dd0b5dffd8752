"""Clinically phrased one-screen summary of a simulation Dataset.

Derived quantities here are simple, documented read-outs of the trajectories
(the full endpoint set with censoring and surrogate grades is
``cartsim.endpoints``, a later module):

* expansion peak: maximum of ``car_copies_per_ug`` after the first infusion and its day;
* cytokine peaks: maxima of ``il6``, ``ifng``, ``il10``, ``tnfa`` after day 0;
* remission day: first output day after infusion with ``marrow_blast_pct`` < 5%;
* relapse: after remission, the first day ``marrow_blast_pct`` is back at >= 5%;
  called CD7-negative when ``blast_cd7neg_pct`` > 50% at that day;
* emerging CD7- clone: CD7-negative blasts above the flow-MRD level (1e-4 of
  marrow cells) at the end of the simulation without morphological relapse.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

REMISSION_PCT = 5.0
MRD_FLOW = 1e-4


def patient_readout(ds: xr.Dataset, patient: int = 0) -> dict:
    """Summary numbers for one patient (NaN / None where not applicable), read on the
    endpoint grid (independent of ``output.dt``)."""
    from cartsim.grid import on_endpoint_grid

    one = on_endpoint_grid(ds).isel(patient=patient)
    t = one["time"].values
    post = t >= 0.0
    out: dict = {"status": str(one["status_name"].values)}
    if "car_copies_per_ug" in one:
        c = one["car_copies_per_ug"].values
        if post.any() and np.isfinite(c[post]).any():
            k = np.nanargmax(np.where(post, c, -np.inf))
            out["peak_copies_per_ug"] = float(c[k])
            out["peak_day"] = float(t[k])
    for cyt in ("il6", "ifng", "il10", "tnfa"):
        if cyt in one:
            v = one[cyt].values
            if post.any() and np.isfinite(v[post]).any():
                k = np.nanargmax(np.where(post, v, -np.inf))
                out[f"{cyt}_peak"] = float(v[k])
                out[f"{cyt}_peak_day"] = float(t[k])
    if "marrow_blast_pct" in one:
        b = one["marrow_blast_pct"].values
        below = post & (b < REMISSION_PCT)
        rem = t[below][0] if below.any() else None
        out["remission_day"] = None if rem is None else float(rem)
        out["relapse_day"] = None
        out["relapse_cd7neg"] = None
        if rem is not None:
            after = (t > rem) & (b >= REMISSION_PCT)
            if after.any():
                k = np.argmax(after)
                out["relapse_day"] = float(t[k])
                out["relapse_cd7neg"] = bool(one["blast_cd7neg_pct"].values[k] > 50.0)
        b0_frac = (one["marrow_blast_pct"].values[-1] / 100.0
                   * one["blast_cd7neg_pct"].values[-1] / 100.0)
        out["cd7neg_above_mrd_at_end"] = bool(b0_frac > MRD_FLOW)
    if "flu_auc" in one:
        out["flu_auc_mg_h_l"] = float(one["flu_auc"].values[-1])
    return out


def format_summary(ds: xr.Dataset, max_patients: int = 5) -> str:
    """A short multi-line text summary of the first ``max_patients`` patients."""
    t = ds.time.values
    lines = [f"cartsim {ds.attrs.get('cartsim_version', '')} | model {ds.attrs.get('model')} | "
             f"{ds.sizes['patient']} patient(s), days {t[0]:g}..{t[-1]:g}"]
    n_fail = int((ds["status"].values != 0).sum())
    if n_fail:
        lines.append(f"WARNING: {n_fail} patient(s) failed to solve (see 'status'); "
                     f"their values are NaN from the failure on")
    for i in range(min(ds.sizes["patient"], max_patients)):
        r = patient_readout(ds, i)
        lines.append(f"patient {i}: solver {r['status']}")
        if "peak_copies_per_ug" in r:
            lines.append(f"  CAR-T peak: {r['peak_copies_per_ug']:,.0f} copies/ug gDNA on day "
                         f"{r['peak_day']:g}")
        cyt = [f"{name} {r[f'{key}_peak']:,.0f} pg/mL (day {r[f'{key}_peak_day']:g})"
               for key, name in (("il6", "IL-6"), ("ifng", "IFN-g"), ("il10", "IL-10"),
                                 ("tnfa", "TNF-a")) if f"{key}_peak" in r]
        if cyt:
            lines.append("  cytokine peaks: " + ", ".join(cyt))
        if "remission_day" in r:
            rem = r["remission_day"]
            lines.append("  marrow blasts < 5%: " + ("not reached" if rem is None
                                                      else f"day {rem:g}"))
            if r["relapse_day"] is not None:
                kind = "CD7-negative" if r["relapse_cd7neg"] else "CD7-positive"
                lines.append(f"  relapse (>= 5% blasts): day {r['relapse_day']:g}, {kind} "
                             f"(CD7- escape: {'yes' if r['relapse_cd7neg'] else 'no'})")
            else:
                emerging = " but a CD7- clone is above flow MRD at the end" if r[
                    "cd7neg_above_mrd_at_end"] else ""
                lines.append(f"  relapse: none by day {ds.time.values[-1]:g} "
                             f"(CD7- escape: no{emerging})")
        if "flu_auc_mg_h_l" in r:
            lines.append(f"  fludarabine AUC: {r['flu_auc_mg_h_l']:.1f} mg*h/L "
                         f"(>= 13.8 associated with fewer relapses, Fabrizio 2022)")
    if ds.sizes["patient"] > max_patients:
        lines.append(f"... {ds.sizes['patient'] - max_patients} more patient(s)")
    return "\n".join(lines)
