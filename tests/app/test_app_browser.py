"""The served app in a real headless browser: Debian's chromium driven by Selenium through
Debian's chromium-driver (nothing downloads a browser).

Serves the page on 127.0.0.1 (a free port), changes the dose and the product of scenario B,
runs, and checks that the value boxes and the figure change; uploads an observation file and
finds it drawn; downloads the HTML report. Skipped without chromium/chromedriver, except
under ``CI=true``, where it fails (like the HTML-report browser test).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[2] / "experiments" / "data" / "synthetic_cohort.csv"
TIMEOUT_S = 120

DEEP = """
const sel = arguments[0];
const out = [];
const walk = (root) => {
  root.querySelectorAll(sel).forEach(e => out.push(e));
  root.querySelectorAll('*').forEach(e => { if (e.shadowRoot) walk(e.shadowRoot); });
};
walk(document);
return out;
"""
"""Every element matching a CSS selector, through Bokeh's shadow roots."""


def _browser_parts():
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser")
                     if shutil.which(n)), None)
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
    missing = [n for n, p in (("chromium", chromium), ("chromedriver", driver)) if p is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[dev]')")
    if missing:
        message = (f"{', '.join(missing)} not found; install Debian's chromium and "
                   "chromium-driver (apt-get install -y chromium chromium-driver) to test the "
                   "app in a real browser")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return chromium, driver


@pytest.fixture(scope="module")
def server():
    pytest.importorskip("panel")
    # Compile (or load) the kernels the app's first run needs before the browser waits on a
    # result: in a fresh clone that first run compiles them cold (a minute or two on 2 cores),
    # which is not what these tests check and can outlast their waits.
    import dataclasses

    from cartsim import OutputOptions, Scenario
    from cartsim.app.serve import free_port, serve
    from cartsim.clinical import EndpointSettings
    from cartsim.population import PopulationSpec
    from cartsim.trial import run_trial

    run_trial(Scenario(output=OutputOptions(t_end=60.0)),
              dataclasses.replace(PopulationSpec(), n=3), EndpointSettings(), seed=0)

    port = free_port()
    srv = serve(port, threaded=True, n_cohort=3, t_end=60)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 60
    import urllib.request

    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)
    yield url
    srv.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium, driver_path = _browser_parts()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1600,2400", "--no-first-run",
                f"--user-data-dir={tmp_path_factory.mktemp('profile')}"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    drv = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    drv.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow",
                                                        "downloadPath": str(downloads)})
    drv.downloads = downloads
    yield drv
    drv.quit()


def _wait(what, check, timeout=TIMEOUT_S):
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = check()
        except StaleElementReferenceException:  # Bokeh re-rendered it: look again
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _find(drv, selector):
    return drv.execute_script(DEEP, selector)


def _inner(drv, cls, tag):
    """The ``tag`` inside the widget whose host carries CSS class ``cls``."""
    return _wait(f"{tag} of .{cls}", lambda: drv.execute_script(
        "const h = arguments[0]; return h && h.shadowRoot && "
        "h.shadowRoot.querySelector(arguments[1]);",
        (_find(drv, f".{cls}") or [None])[0], tag))


def _type(drv, cls, text):
    def go():  # a re-render mid-way makes the element stale: _wait finds it and types again
        box = _inner(drv, cls, "input")
        box.clear()
        box.send_keys(text + "\n")
        return True
    _wait(f"typing into .{cls}", go)


def _choose(drv, cls, option_text):
    def go():
        sel = _inner(drv, cls, "select")
        drv.execute_script(
            "const s = arguments[0]; const o = [...s.options].find(o => "
            "o.text.includes(arguments[1])); s.value = o.value; "
            "s.dispatchEvent(new Event('input', {bubbles: true})); "
            "s.dispatchEvent(new Event('change', {bubbles: true}));", sel, option_text)
        return True
    _wait(f"choosing {option_text!r} in .{cls}", go)


def _click(drv, cls, tag="button"):
    """Click the ``tag`` inside the widget of class ``cls``, found and clicked in one script:
    no element reference crosses to Python, so a Bokeh re-render between finding and
    clicking cannot leave a stale one (retried until the element exists)."""
    script = DEEP.replace("return out;", (
        "const h = out[0]; const e = h && h.shadowRoot && h.shadowRoot.querySelector("
        "arguments[1]); if (e) { e.click(); return true; } return false;"))
    _wait(f"a click on the {tag} of .{cls}", lambda: drv.execute_script(script, f".{cls}", tag))


def _boxes(drv):
    """(scenario, box class) -> the box's value, read in one script (no stale elements)."""
    return {tuple(k): v for k, v in drv.execute_script(
        DEEP.replace("return out;", "return out.map(e => [[e.dataset.scenario, "
                     "e.classList[e.classList.length - 1]], e.dataset.value]);"), ".cs-box")}


def _figure(drv, key="trajectories"):
    """The ``src`` of the figure's image (a PNG data URI), looked up inside its pane."""
    return drv.execute_script(
        "const key = arguments[0]; const hosts = [];"
        "const f = (r) => { r.querySelectorAll(key).forEach(h => hosts.push(h));"
        " r.querySelectorAll('*').forEach(e => { if (e.shadowRoot) f(e.shadowRoot); }); };"
        "f(document); const imgs = [];"
        "const g = (r) => { r.querySelectorAll('img').forEach(i => imgs.push(i.src));"
        " r.querySelectorAll('*').forEach(e => { if (e.shadowRoot) g(e.shadowRoot); }); };"
        "hosts.forEach(h => g(h.shadowRoot || h)); return imgs[0] || null;", ".cs-fig-" + key)


def _text(drv, cls):
    """The text of the panes with CSS class ``cls``, read in one script."""
    return drv.execute_script(
        DEEP.replace("return out;", "return out.map(h => (h.shadowRoot || h).textContent)"
                     ".join(' ');"), f".{cls}")


def _status(drv):
    return _text(drv, "cs-status")


def test_clinician_path_in_a_real_browser(server, browser):
    drv = browser
    drv.get(server)
    _wait("the Run button", lambda: _find(drv, ".cs-run"))
    # a refused value is explained on its control, in the library's words
    _type(drv, "cs-B-regimen-car-dose-per-kg", "-1")
    _wait("the refusal under the dose", lambda: "regimen.car_dose_per_kg=-1.0 is not "
          "accepted: expected a number >= 0.0" in _text(drv, "cs-B-regimen-car-dose-per-kg-error"))
    _type(drv, "cs-B-regimen-car-dose-per-kg", "5e5")
    _wait("the refusal to clear", lambda: "Ready" in _status(drv))
    _click(drv, "cs-run")
    _wait("value boxes", lambda: ("B", "cs-box-cmax") in _boxes(drv))
    _wait("the run to finish", lambda: "Done" in _status(drv))
    before, fig_before = _boxes(drv), _figure(drv)
    assert fig_before and fig_before.startswith("data:image/png")
    # change the dose and the product of scenario B, run again
    _type(drv, "cs-B-regimen-car-dose-per-kg", "5e6")
    _choose(drv, "cs-B-product", "off-the-shelf")
    _wait("the changes to be accepted", lambda: "Ready" in _status(drv))
    _click(drv, "cs-run")
    _wait("new value boxes", lambda: _boxes(drv).get(("B", "cs-box-cmax"))
          not in (None, before[("B", "cs-box-cmax")]))
    _wait("the run to finish", lambda: "Done" in _status(drv))
    after = _boxes(drv)
    assert after[("A", "cs-box-cmax")] == before[("A", "cs-box-cmax")]  # A untouched
    assert _figure(drv) != fig_before
    # upload an observation file: it is read and drawn
    fig_run = _figure(drv)
    _inner(drv, "cs-upload", "input[type=file]").send_keys(str(EXAMPLE))
    _wait("the upload to be read", lambda: "observations, drawn" in _text(
        drv, "cs-upload-status"))
    _wait("the observed data drawn", lambda: _figure(drv) != fig_run)
    _wait("the caption naming the observed data",
          lambda: "black dots: observed data" in _text(drv, "cs-caption-trajectories"))


def test_report_download_in_a_real_browser(server, browser):
    drv = browser
    drv.get(server)
    _wait("the Run button", lambda: _find(drv, ".cs-run"))
    _type(drv, "cs-B-regimen-car-dose-per-kg", "5e6")
    _choose(drv, "cs-B-product", "off-the-shelf")
    _wait("the changes to be accepted", lambda: "Ready" in _status(drv))
    _click(drv, "cs-run")
    _wait("the run to finish", lambda: "Done" in _status(drv))
    report = drv.downloads / "whatif_report.html"
    assert not report.exists()
    # Panel's FileDownload listens for clicks on the link inside its button (a click on the
    # <button> itself does not reach it): the server writes the report, sends it to the page,
    # and the page saves it through a blob link (auto=True: on this first click)
    _click(drv, "cs-download-report", "a")

    def saved():
        if report.is_file() and report.stat().st_size and not list(
                drv.downloads.glob("*.crdownload")):
            return report.read_text(encoding="utf-8")
        return None

    page = _wait("the report saved by the browser", saved, timeout=60)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for fig in ("trajectories", "drugs", "probabilities"):
        assert f'id="fig-{fig}"' in page
    assert page.count("data:image/png;base64,") >= 3
    # both scenarios side by side, with their sentence, and the changes made to B
    assert "<th></th><th>A</th><th>B</th>" in page
    assert "<p>A: " in page and "<p>B: " in page
    assert "allogeneic off-the-shelf" in page and "5e+06" in page
