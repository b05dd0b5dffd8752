"""The dosing what-if: overrides from plain mappings, simulation, and the side-by-side figure."""

import numpy as np
import pytest
from matplotlib.figure import Figure

import cartsim.plot as cplot
from cartsim.plot.whatif import fine_times, what_if_overrides


def test_overrides_are_command_line_strings():
    out = what_if_overrides({"marrow_blast_pct": 60.0, "weight_kg": 55},
                            {"product": "ko", "car_days": [0, 3], "car_fractions": [0.3, 0.7],
                             "hsct_day": None, "flu_renal_adjust": True}, t_end=120)
    assert out == ["product=ko", "patient.marrow_blast_pct=60.0", "patient.weight_kg=55",
                   "regimen.car_days=[0,3]", "regimen.car_fractions=[0.3,0.7]",
                   "regimen.hsct_day=null", "regimen.flu_renal_adjust=true",
                   "output.t_end=120.0"]


def test_fine_times_resolve_lymphodepletion():
    t = np.asarray(fine_times(-5.0, 30.0))
    assert t[0] == -5.0 and t[-1] == 30.0 and (np.diff(t) > 0).all()
    assert np.diff(t[t < 1]).max() == pytest.approx(0.05)


def test_bad_regimen_value_is_named():
    from cartsim import ScenarioError

    with pytest.raises(ScenarioError, match="car_fractions"):
        cplot.run_what_if({}, {"A": {"car_days": [0, 3], "car_fractions": [0.5, 0.6]}},
                          n_cohort=2, t_end=20)


def test_run_what_if_and_figure():
    res = cplot.run_what_if({"marrow_blast_pct": 30.0, "crcl_ml_min": 50.0},
                            {"A": {}, "B": {"product": "ko", "car_dose_per_kg": 2e5}},
                            n_cohort=3, t_end=40.0)
    assert list(res.typical) == ["A", "B"]
    assert res.scenarios["B"].product.name == "ko"
    assert res.scenarios["B"].regimen.car_dose_per_kg == 2e5
    assert res.scenarios["A"].patient.crcl_ml_min == 50.0
    ep = res.endpoints()
    assert [e.sizes["patient"] for e in ep.values()] == [3, 3]
    # the cohort keeps the patient's covariates; only the random effects vary
    assert set(ep["A"]["marrow_blast_pct"].values) == {30.0}
    assert len(set(ep["A"]["rho_max"].values)) == 3
    fig = cplot.what_if_figure(res, ["car_copies_per_ug", "il6"], xlim=(-6, 40))
    assert isinstance(fig, Figure)
    axes = np.array(fig.axes).reshape(2, 2)
    assert axes[0, 0].get_title().startswith("A\n") and "ko" in axes[0, 1].get_title()
    assert "(copies/\u00b5g)" in axes[0, 0].get_ylabel() and "(pg/mL)" in axes[1, 0].get_ylabel()
    assert axes[0, 0].get_yscale() == "log"
    assert axes[1, 1].get_xlabel() == "days since CAR-T infusion"


def test_what_if_carries_the_ensemble():
    """Each regimen's cohort is rerun under each member (same patients): a member that
    halves the killing rate lowers the response, the bars draw the members' range, and an
    AML patient keeps the AML growth rate while the ensemble's T-ALL rate is ignored."""
    import pandas as pd
    from matplotlib.collections import LineCollection

    from cartsim.plot.clinical import endpoint_probabilities

    members = pd.DataFrame({"id": [1, 2], "+model.params.k_kill": [1.7, 0.05],
                            "disease.blast_growth_per_day": [0.04, 0.09]})
    res = cplot.run_what_if({"marrow_blast_pct": 60.0},
                            {"T-ALL": {}, "AML": {"disease": "cd7_aml"}}, n_cohort=6,
                            t_end=40.0, ensemble=members, ensemble_members=2)
    assert [len(v) for v in res.members.values()] == [2, 2]
    assert res.pinned == {"T-ALL": [], "AML": ["disease.blast_growth_per_day"]}
    cr = [endpoint_probabilities(m)[0]["p"] for m in res.members["T-ALL"]]
    assert cr[0] > cr[1]
    ax = cplot.endpoint_bars(res.endpoints(), members=res.member_endpoints())
    assert any(isinstance(c, LineCollection) for c in ax.collections)
    assert "model range" in ax.get_xlabel()
    with pytest.raises(ValueError, match="ensemble_members=0"):
        cplot.run_what_if({}, {"A": {}}, n_cohort=2, t_end=20, ensemble=members,
                          ensemble_members=0)
