"""The HTML report draws evaluable patients only, and no false zero for what is not
estimable (issue 14 item 2)."""

from __future__ import annotations

import re

from cartsim import OutputOptions, Scenario
from cartsim.population import PopulationSpec
from cartsim.reporting.html import render_html_report
from cartsim.simulation import simulate
from cartsim.trial import TrialOptions, run_trial

N = 6
IMG = re.compile(r'<figure id="fig-([a-z]+)"><img src="data:image/png;base64,')


def _failing(which):
    """The ODE with the patients whose global index is in ``which`` reported failed."""

    def sim(scenarios, start):
        ds = simulate(scenarios)
        st = ds["status"].values.copy()
        for i in range(st.size):
            if start + i in which:
                st[i] = 1
        return ds.assign(status=ds["status"].copy(data=st))

    return sim


def _trial(output=None, which=()):
    sc = Scenario(output=output or OutputOptions(t_end=120.0))
    return run_trial(sc, PopulationSpec(n=N), seed=2, simulate_fn=_failing(set(which)),
                     options=TrialOptions(save_trajectories=True))


def test_no_evaluable_patient_no_figure():
    res = _trial(which=range(N))
    page = render_html_report(res.endpoints, trajectories=res.trajectories)
    assert not IMG.findall(page)
    assert f"No evaluable patient: all {N} solves failed" in page
    assert f"{N} simulated, 0 evaluable" in page


def test_figures_draw_the_evaluable_patients_only():
    res = _trial(which={1, 4})
    page = render_html_report(res.endpoints, trajectories=res.trajectories)
    assert {"km", "endpoints", "swimmer", "waterfall", "cohort"} <= set(IMG.findall(page))
    for caption in ("of 4 evaluable patients", "Trajectories of 4 evaluable patients",
                    "among the 4 evaluable patients"):
        assert caption in page, caption


def test_endpoints_the_follow_up_does_not_reach_are_not_drawn_as_zero():
    res = _trial(output=OutputOptions(t_end=20.0))
    page = render_html_report(res.endpoints, trajectories=res.trajectories)
    assert re.search(r"Not estimable, not drawn: CR/CRi at day 28 \(follow-up ends day 20 "
                     r"&lt; day 28\); flow MRD-negative at day 28", page)
    assert "not estimable (follow-up ends day 20 &lt; day 28)" in page  # the table rows


def test_trajectory_figures_of_a_coarse_output_grid():
    res = _trial(output=OutputOptions(t_end=120.0, dt=30.0))
    assert "endpoint_time" in res.trajectories.dims
    page = render_html_report(res.endpoints, trajectories=res.trajectories)
    assert {"waterfall", "cohort"} <= set(IMG.findall(page))
