"""The HTML trial report: self-contained, and rendered by a real headless browser.

The browser test opens ``report.html`` in Debian's ``chromium`` (headless): a copy of the
page with a tiny probe script reports, after the load event, each ``<img>``'s decoded size
(``--dump-dom``), and a screenshot must show the figures' colours. Without chromium the
browser tests are skipped, except under ``CI`` (set by the CI runner), where they fail.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from cartsim.reporting.html import write_html_report
from cartsim.tasks.report import run_report_task

N_FIGURES = 6  # KM, endpoint bars, swimmer, waterfall, cohort trajectories, patient story
FIGURE_COLOURS = {"endpoint bars": "#1f5fa8", "swimmer CR lanes": "#1e8449"}
"""Solid colours of large areas of the figures (none is used by the page's CSS)."""
IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def trial():
    from cartsim import load_run_config
    from cartsim.trial import run_trial

    cfg = load_run_config(["population.n=12", "output.t_end=365"])
    return cfg, run_trial(cfg.scenario(), cfg.population, cfg.endpoints, options=cfg.trial)


@pytest.fixture(scope="module")
def report(trial, tmp_path_factory):
    from cartsim.trial import trial_trajectories

    cfg, result = trial
    path = write_html_report(result, tmp_path_factory.mktemp("report") / "report.html",
                             scenario=cfg.scenario(), trajectories=trial_trajectories(result))
    return path


def chromium() -> str:
    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(n)), None)
    if exe is None:
        message = ("chromium not found; install it (apt-get install -y chromium) to test the "
                   "HTML report in a real browser")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return exe


def run_chromium(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    cmd = [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
           "--disable-dev-shm-usage", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", *args]
    env = dict(os.environ, HOME=str(tmp_path))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, check=True)


def test_report_is_self_contained(report):
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page)
    assert "<script" not in page and "@import" not in page and "url(" not in page
    images = IMG.findall(page)
    assert len(images) == N_FIGURES
    from matplotlib.image import imread

    for b64 in images:
        img = imread(io.BytesIO(base64.b64decode(b64)), format="png")
        assert img.shape[0] > 200 and img.shape[1] > 400 and img[..., :3].std() > 0.05
    for text in ("Scenario", "nanobody", "fludarabine 30", "Results", "CR/CRi (ORR) at day 28",
                 "SURROGATE", "full configuration (YAML)", "car_dose_per_kg: 1000000.0"):
        assert text in page, text


def test_browser_decodes_every_figure(report, tmp_path):
    probe = tmp_path / "probe.html"
    script = ("<script>window.addEventListener('load', function () {"
              "document.body.setAttribute('data-decoded', Array.from(document.images)"
              ".map(function (i) { return i.complete ? i.naturalWidth + 'x' + i.naturalHeight"
              " : 'pending'; }).join(','));});</script></body>")
    probe.write_text(report.read_text().replace("</body>", script))
    dom = run_chromium(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                       tmp_path).stdout
    assert dom.count("<img") == N_FIGURES
    decoded = re.search(r'data-decoded="([^"]*)"', dom)
    assert decoded, "the page's load event did not fire in chromium"
    sizes = decoded.group(1).split(",")
    assert len(sizes) == N_FIGURES
    for size in sizes:
        w, h = (int(x) for x in size.split("x"))  # 'pending' would fail here
        assert w > 400 and h > 200, sizes


def test_browser_screenshot_shows_the_figures(report, tmp_path):
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    run_chromium([f"--screenshot={shot}", "--window-size=1200,5000", report.as_uri()], tmp_path)
    img = imread(shot)[..., :3]
    assert img.shape[:2] == (5000, 1200)
    assert img.std() > 0.1  # not blank
    from matplotlib.colors import to_rgb

    for what, colour in FIGURE_COLOURS.items():
        n = (np.abs(img - np.array(to_rgb(colour))) < 0.03).all(axis=-1).sum()
        assert n > 5000, f"only {n} pixels of the {what} colour {colour}: figure not rendered"


def test_report_task_writes_the_page_and_the_trial_files(tmp_path, capsys):
    from cartsim import load_run_config

    cfg = load_run_config(["task=report", "population.n=6", "output.t_end=120"])
    run_report_task(cfg, tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"report.html", "trial_endpoints.nc", "trial_summary.csv", "trial_km.png"} <= names
    assert "cartsim: wrote html:" in capsys.readouterr().out
    assert len(IMG.findall((tmp_path / "report.html").read_text())) == N_FIGURES


def test_report_task_with_the_stochastic_engine_shows_its_realisations(tmp_path):
    """engine=stochastic: the table and the figures come from the same realisations."""
    import xarray as xr

    from cartsim import load_run_config

    cfg = load_run_config(["task=report", "engine=stochastic", "population.n=4",
                           "output.t_end=60"])
    run_report_task(cfg, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "stochastic (one realisation per patient)" in page
    assert len(IMG.findall(page)) == N_FIGURES
    with xr.open_dataset(tmp_path / "trial_endpoints.nc") as ep, \
            xr.open_dataset(tmp_path / "trial_trajectories.nc") as traj:
        assert ep.attrs["engine"] == "stochastic"
        # the saved trajectories are the realisations the endpoints were computed from
        np.testing.assert_allclose(traj["car_copies_per_ug"].max("time").values,
                                   ep["cmax_qpcr"].values, rtol=1e-12)


def test_the_renderer_never_simulates(trial, tmp_path, monkeypatch):
    """A result that kept no trajectories gets no trajectory figure (no re-simulation)."""
    import cartsim.simulation

    def forbidden(*args, **kwargs):
        raise AssertionError("write_html_report simulated")

    monkeypatch.setattr(cartsim.simulation, "simulate", forbidden)
    _, result = trial
    assert result.trajectories is None
    path = write_html_report(result, tmp_path)
    assert len(IMG.findall(path.read_text())) == 3  # KM, bars, swimmer


def test_report_from_an_endpoints_dataset_only(trial, tmp_path):
    _, result = trial
    path = write_html_report(result.endpoints, tmp_path)  # a folder gets report.html
    assert path.name == "report.html"
    assert len(IMG.findall(path.read_text())) == 3  # no trajectories: KM, bars, swimmer
