"""Not estimable is not zero; the endpoint grid is what the endpoints read (hand-made data)."""

import numpy as np
import pytest

from cartsim import CartsimWarning
from cartsim.clinical import endpoints, estimable, not_estimable_reason
from cartsim.simulation import ENDPOINT_VARIABLES

# windowed endpoints and the day the follow-up must reach (day 28, month 1/3/6, days 0-91)
WINDOWED = {"response_d28": 28.0, "mrd_flow_neg_d28": 28.0, "mrd_mol_neg_d28": 28.0,
            "auc28_qpcr": 28.0, "auc28_flow": 28.0, "crs_grade_1m": 30.0,
            "icans_grade_1m": 30.0, "mrd_flow_neg_m3": 91.0, "mrd_mol_neg_m3": 91.0,
            "best_response": 91.0, "best_mrd_flow_neg": 91.0, "best_mrd_mol_neg": 91.0,
            "em_best_response": 91.0, "crs_grade_3m": 91.0, "icans_grade_3m": 91.0,
            "car_detectable_m6": 183.0}


def remission(t):
    """Blasts 40% -> 1e-4 % from day 5 on: CR/CRi and MRD-negative wherever assessed."""
    return np.where(t < 5.0, 40.0, 1e-4)


@pytest.mark.parametrize("t_end", [10.0, 27.0, 28.0, 30.0, 90.0, 91.0, 182.0, 183.0])
def test_a_windowed_endpoint_is_estimable_exactly_when_follow_up_reaches_its_day(
        make_ds, no_death, t_end):
    ep = endpoints(make_ds(2, t=np.arange(-5.0, t_end + 1.0), marrow_blast_pct=remission,
                           em_volume_cm3=10.0), no_death)
    for name, day in WINDOWED.items():
        assert ep[name].attrs["needs_follow_up_day"] == day, name
        ok = estimable(ep, name)
        assert ok.all() == (t_end >= day) and ok.any() == ok.all(), (name, t_end)
        if t_end < day:  # the fill of a failed solve, the reason beside it: never a value
            assert ep[name].attrs["not_estimable"] == f"follow-up ends day {t_end:g} < day " \
                                                     f"{day:g}"
            assert not_estimable_reason(ep, name) == ep[name].attrs["not_estimable"]
            v = ep[name].values
            assert (np.isnan(v).all() if v.dtype.kind == "f" else
                    (~v).all() if v.dtype == bool else
                    (v == (0 if name == "em_best_response" else -1)).all()), name
        else:
            assert "not_estimable" not in ep[name].attrs and not not_estimable_reason(ep, name)
    if t_end >= 28.0:
        assert (ep["response_d28"] >= 1).all() and ep["mrd_mol_neg_d28"].all()


def test_endpoints_without_a_window_are_estimable_on_any_follow_up(make_ds, no_death):
    ep = endpoints(make_ds(t=np.arange(-5.0, 11.0), marrow_blast_pct=remission), no_death)
    for name in ("crs_grade", "cmax_qpcr", "expansion", "response_day", "relapse",
                 "t_aplasia_days", "death"):
        assert estimable(ep, name).all() and "needs_follow_up_day" not in ep[name].attrs
    assert ep["response_day"].item() == 5.0


def test_failed_patients_are_not_estimable_anywhere(make_ds, no_death):
    ep = endpoints(make_ds(3, status=[0, 1, 0]), no_death)
    for name in ("crs_grade", "response_d28", "cmax_qpcr"):
        assert estimable(ep, name).tolist() == [True, False, True], name
    ep = endpoints(make_ds(2, status=[3, 1]), no_death)
    assert not_estimable_reason(ep, "crs_grade") == "no evaluable patient (every solve failed)"


def _with_endpoint_grid(make_ds, **traj):
    """A Dataset as cartsim.simulate writes it for output.dt=30: the daily values beside."""
    daily = make_ds(t=np.arange(-5.0, 181.0), **traj)
    stored = daily.isel(time=slice(None, None, 30))
    extra = {f"endpoint_{v}": (("patient", "endpoint_time"), daily[v].values, daily[v].attrs)
             for v in ENDPOINT_VARIABLES}
    return daily, stored.assign_coords(endpoint_time=daily["time"].values).assign(extra)


def test_endpoints_read_the_endpoint_grid_not_the_stored_one(make_ds, no_death):
    bump = {"il6": lambda t: 5.0 + 3000.0 * np.exp(-0.5 * ((t - 8.0) / 1.5) ** 2),
            "car_copies_per_ug": lambda t: 1e5 * np.exp(-0.5 * ((t - 11.0) / 3.0) ** 2)}
    daily, coarse = _with_endpoint_grid(make_ds, marrow_blast_pct=remission, **bump)
    assert 8.0 not in coarse["time"].values  # the stored grid misses the IL-6 peak
    a, b = endpoints(daily, no_death), endpoints(coarse, no_death)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert b["crs_grade"].item() == 3 and b["il6_peak_day"].item() == 8.0


def test_a_coarse_grid_without_an_endpoint_grid_warns(make_ds, no_death):
    daily, coarse = _with_endpoint_grid(make_ds)
    bare = coarse.drop_vars([v for v in coarse.data_vars if v.startswith("endpoint_")]) \
        .drop_vars("endpoint_time")
    with pytest.warns(CartsimWarning, match="no endpoint grid"):
        endpoints(bare, no_death)
