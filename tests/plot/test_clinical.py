"""Swimmer, waterfall, endpoint bars and Kaplan-Meier plots of trial endpoints."""

import numpy as np
import pytest
from matplotlib.figure import Figure
from plot_helpers import check_baseline, deterministic_style, synthetic_dataset

import cartsim.plot as cplot
from cartsim.stats import kaplan_meier as km_estimate


def test_swimmer_lanes_markers_and_order(ep):
    ax = cplot.swimmer(ep, max_patients=20)
    assert ax.get_xlabel() == "time since CAR-T infusion (months)"
    bars = ax.patches[:20]
    widths = [b.get_width() for b in bars]
    assert widths == sorted(widths)  # longest follow-up at the top
    np.testing.assert_allclose(sorted(widths), np.sort(ep["os_day"].values[:20]) / 30.4375)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    for expected in ("first remission (< 5% blasts)", "death", "best response CR"):
        assert expected in labels
    deaths = [ln for ln in ax.get_lines() if ln.get_label() == "death"][0]
    assert len(deaths.get_xdata()) == int(ep["death"][:20].sum())
    relapses = sum(len(ln.get_xdata()) for ln in ax.get_lines()
                   if ln.get_label() in ("CD7+ relapse", "CD7-negative relapse"))
    assert relapses == int(ep["relapse"][:20].sum())


def test_swimmer_days_unit(ep):
    ax = cplot.swimmer(ep, unit="days")
    assert ax.get_xlabel().endswith("(days)")
    assert max(b.get_width() for b in ax.patches) == pytest.approx(730.0)


def test_waterfall_sorted_log10_reduction():
    ds = synthetic_dataset(n_patients=5)
    ch = cplot.blast_change(ds)
    ax = cplot.waterfall(ds)
    heights = [b.get_height() for b in ax.patches]
    assert len(heights) == 5
    assert sorted(heights, reverse=True) == sorted(heights, reverse=True)
    np.testing.assert_allclose(sorted(heights, reverse=True),
                               np.sort(ch["log10_change"].values)[::-1])
    assert "log10" in ax.get_ylabel()
    assert float(ch["baseline_pct"][0]) == pytest.approx(40.0001, rel=1e-3)


def test_waterfall_percent_is_bounded_at_minus_100():
    ax = cplot.waterfall(synthetic_dataset(), metric="percent")
    assert "(%)" in ax.get_ylabel()
    assert all(-100.0 <= b.get_height() <= 0 for b in ax.patches)
    with pytest.raises(ValueError, match="metric"):
        cplot.waterfall(synthetic_dataset(), metric="fold")


def test_endpoint_probabilities_and_bars(ep):
    rows = cplot.endpoint_probabilities(ep)
    cr = rows[0]
    assert cr["label"] == "CR/CRi at day 28"
    assert cr["k"] == int((ep["response_d28"] >= 1).sum()) and cr["n"] == ep.sizes["patient"]
    assert cr["lo"] <= cr["p"] <= cr["hi"]
    ax = cplot.endpoint_bars({"A": ep, "B": ep.isel(patient=slice(0, 12))})
    assert ax.get_xlabel() == "patients (%), with exact 95% CI"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["A (n=24)", "B (n=12)"]
    assert len(ax.patches) == 2 * len(rows)


def test_kaplan_meier_matches_the_estimator(ep):
    ax = cplot.kaplan_meier(ep)
    assert ax.get_ylabel() == "probability" and ax.get_ylim() == (0.0, 1.02)
    assert ax.get_xlabel() == "time since CAR-T infusion (months)"
    pfs = [ln for ln in ax.get_lines() if ln.get_label().startswith("PFS")][0]
    km = km_estimate(ep["pfs_day"].values, ep["pfs_event"].values)
    # the step curve's values are 1 then the estimator's survival at each event time
    np.testing.assert_allclose(np.unique(pfs.get_ydata()), np.unique(
        np.concatenate([[1.0], km.survival])))
    texts = [t.get_text() for t in ax.texts]
    assert "number at risk" in texts and str(ep.sizes["patient"]) in texts  # at risk at 0
    assert len(ax.collections) == 2  # two 95% bands


def test_kaplan_meier_cohorts_and_errors(ep):
    ax = cplot.kaplan_meier({"A": ep, "B": ep.isel(patient=slice(0, 10))}, which=("os",),
                            unit="days", at_risk=False, ci=False)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["A OS (n=24)", "B OS (n=10)"]
    assert not ax.collections
    with pytest.raises(ValueError, match="unit"):
        cplot.kaplan_meier(ep, unit="weeks")
    with pytest.raises(ValueError, match="efs_day"):
        cplot.kaplan_meier(ep, which=("efs",))


def test_swimmer_baseline(ep, tmp_path):
    with deterministic_style():
        fig = Figure(figsize=(6, 4.5), layout="constrained")
        cplot.swimmer(ep, fig.add_subplot())
        check_baseline(fig, "swimmer", tmp_path)


def test_kaplan_meier_baseline(ep, tmp_path):
    with deterministic_style():
        fig = Figure(figsize=(5, 4), layout="constrained")
        cplot.kaplan_meier(ep, fig.add_subplot())
        check_baseline(fig, "kaplan_meier", tmp_path)


def test_waterfall_baseline(tmp_path):
    with deterministic_style():
        fig = Figure(figsize=(5, 3), layout="constrained")
        cplot.waterfall(synthetic_dataset(n_patients=6), fig.add_subplot())
        check_baseline(fig, "waterfall", tmp_path)
