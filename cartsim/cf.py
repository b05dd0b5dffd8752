"""CF conventions on result Datasets: :func:`cf_conventions`, applied where one is built.

The simulation Dataset (:func:`cartsim.batch.to_dataset`) and the stochastic
engine's (:func:`cartsim.stochastic.engine.simulate_stochastic`) pass through this one
function, so the attributes below are decided here and nowhere else (CF-1.10,
https://cfconventions.org/Data/cf-conventions/cf-conventions-1.10/cf-conventions.html).

* ``Conventions = "CF-1.10"`` (global; the prose ``conventions`` attribute is dropped) and
  ``history``, one line per creation, newest first: ``<created> cartsim <version>: <title>``.
* ``time`` is a coordinate with ``axis = "T"`` and no ``_FillValue`` (a coordinate has no
  missing values; every float coordinate is written without one). Its ``units`` stay
  ``"day"``: it is a duration since CAR-T infusion, not a date, and ``"days since
  <epoch>"`` would make every netCDF reader decode it into calendar dates.
* Status codes are CF flags: ``flag_values`` (the variable's own integer type) and
  ``flag_meanings`` (the names, blank-separated), so a reader can test
  ``ds.status.cf == "success"`` (cf_xarray) instead of parsing the ``long_name``.
* Integer data variables (status, solver counters) are stored as ``int32`` when their
  values fit, ``int64`` otherwise: no value ever changes.
* **Counts keep their noun** (the decision for cell and copy units): ``units`` stays
  ``"cells"``, ``"cells/uL"``, ``"copies/ug"``, ``"cells/kg"``, which UDUNITS-2 does not
  define, because people, plots and the observed-data overlays read the noun, and a count
  is the dimensionless number 1 in UDUNITS, which would say less. The global ``comment``
  declares it, and :func:`udunits` gives the strict UDUNITS form of any such unit (the
  noun replaced by ``1``: ``"cells/uL"`` -> ``"1/uL"``). The one unit that UDUNITS would
  read wrongly, ``"nat"`` (nano-technical-atmospheres there), becomes ``"1"`` with the
  nats named in the ``long_name``.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping

import numpy as np
import xarray as xr

__all__ = ["CONVENTIONS", "COUNT_NOUNS", "cf_conventions", "udunits"]

CONVENTIONS = "CF-1.10"
"""The CF version the result Datasets follow (global attribute ``Conventions``)."""

COUNT_NOUNS = ("cells", "cell", "copies", "copy")
"""Words in ``units`` that count things: not UDUNITS units, each the dimensionless 1."""

COUNT_COMMENT = ("units: 'cells' and 'copies' (as in cells, cells/uL, copies/ug, cells/kg) "
                 "are counts, which UDUNITS-2 does not define: read each as the "
                 "dimensionless 1 (cells/uL = 1/uL, copies/ug = 1/ug); cartsim.cf.udunits "
                 "gives the strict form")

_COUNT = re.compile(r"\b(?:" + "|".join(COUNT_NOUNS) + r")\b")
_INT32 = np.iinfo(np.int32)


def udunits(units: str) -> str:
    """The UDUNITS-2 form of a cartsim unit: each count noun (:data:`COUNT_NOUNS`) -> ``1``.

    >>> udunits("cells/uL"), udunits("copies/ug"), udunits("mg/L")
    ('1/uL', '1/ug', 'mg/L')
    """
    return _COUNT.sub("1", units)


def cf_conventions(ds: xr.Dataset, *, flags: Mapping[str, Mapping[int, str]] | None = None
                   ) -> xr.Dataset:
    """Return ``ds`` with the CF attributes and encodings of the module notes.

    Parameters
    ----------
    ds : a result Dataset (not modified; the copy shares its arrays).
    flags : ``{variable: {code: name}}`` for flag variables, e.g.
        ``{"status": STATUS_NAMES}``; names become ``flag_meanings`` words (blanks -> ``_``).
        Variables already carrying ``flag_values`` keep them.

    Applying it twice gives the same Dataset as applying it once.
    """
    narrow = {name: var.astype(np.int32) for name, var in ds.data_vars.items()
              if var.dtype.kind in "iu" and var.dtype != np.int32 and (
                  var.size == 0 or (_INT32.min <= int(var.min()) and int(var.max()) <= _INT32.max))}
    out = ds.assign(narrow) if narrow else ds.copy(deep=False)  # one merge, not one per name
    for name, codes in (flags or {}).items():
        if name in out.variables:
            values = sorted(codes)
            out.variables[name].attrs.update({
                "flag_values": np.array(values, dtype=out.variables[name].dtype),
                "flag_meanings": " ".join(str(codes[v]).replace(" ", "_") for v in values)})
    for name, var in out.variables.items():
        if name in out.coords and var.dtype.kind == "f":
            var.encoding["_FillValue"] = None
        if var.attrs.get("units") == "nat":
            var.attrs["units"] = "1"
            var.attrs["long_name"] = f"{var.attrs.get('long_name', name)} (in nats: natural log)"
    if "time" in out.coords:
        out.variables["time"].attrs["axis"] = "T"
    _global_attrs(out)
    return out


def _global_attrs(ds: xr.Dataset) -> None:
    """``Conventions``, ``history`` and the count-unit ``comment`` (in place)."""
    from cartsim import __version__

    attrs = ds.attrs
    attrs.pop("conventions", None)
    attrs["Conventions"] = CONVENTIONS
    created = attrs.get("created") or _dt.datetime.now(_dt.timezone.utc).isoformat(
        timespec="seconds")
    stamp = f"{created} cartsim "
    line = f"{stamp}{attrs.get('cartsim_version', __version__)}: {attrs.get('title', 'result')}"
    old = [h for h in str(attrs.get("history", "")).splitlines() if h and not h.startswith(stamp)]
    attrs["history"] = "\n".join([line, *old])
    counted = any(_COUNT.search(str(v.attrs.get("units", ""))) for v in ds.variables.values())
    comment = str(attrs.get("comment", ""))
    if counted and COUNT_COMMENT not in comment:
        attrs["comment"] = f"{comment}\n{COUNT_COMMENT}" if comment else COUNT_COMMENT
