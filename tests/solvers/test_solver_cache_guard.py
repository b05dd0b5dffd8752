"""The stale-cache guard: which sources it hashes, and that it runs when called, not at import
(it must not flush anything here)."""

import subprocess
import sys
from pathlib import Path

from cartsim.solvers import cache, driver

ROOT = Path(__file__).resolve().parents[2]


def test_dependency_files_cover_kernels_and_solvers():
    files = cache._dependency_files()
    for mod in ("cartsim.models.kernels", "cartsim.models.cd7_kernel",
                "cartsim.models.stein2019_kernel", "cartsim.models.testproblems",
                "cartsim.solvers.rodas", "cartsim.solvers.dopri", "cartsim.solvers.bdf",
                "cartsim.solvers.driver", "cartsim.solvers.onestep", "cartsim.solvers.multistep",
                "cartsim.solvers.events", "cartsim.solvers.control", "cartsim.solvers.output"):
        assert mod in files, mod
    # Python-side modules that the kernels do not import are not part of the hash
    assert "cartsim.solvers.api" not in files


def test_sources_hash_is_stable_and_stamp_current():
    assert cache.sources_hash() == cache.sources_hash()
    # the stamp was written by the guard (or just now, if a kernel file was edited meanwhile):
    # a repeated check finds it current and flushes nothing
    cache.refresh_cache()
    assert cache.refresh_cache() is False
    assert cache.guard_cache() is False
    # the old import place still answers
    assert driver.refresh_cache is cache.refresh_cache and driver.sources_hash is cache.sources_hash


def test_guard_runs_when_called_not_at_import():
    """Importing the solvers checks nothing; ``guard_cache`` runs the check once per process."""
    code = (
        "import cartsim.solvers.cache as c\n"
        "calls = []\n"
        "c.refresh_cache = lambda **kw: calls.append(kw) or False\n"
        "import cartsim.solvers, cartsim.solvers.driver, cartsim.solvers.api\n"
        "assert calls == [], calls\n"
        "c.guard_cache(); c.guard_cache()\n"
        "assert len(calls) == 1, calls\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr


def test_stochastic_engine_guards_its_cache_against_model_edits():
    """The stochastic engine inlines the cd7 network: its guard hashes the model kernel too
    (a stale cache once served the old reaction layout after a kernel edit: every run hit
    max_steps)."""
    import cartsim.stochastic.kernel  # noqa: F401  (runs the guard at import)

    seeds = ("cartsim.stochastic.kernel",)
    files = cache._dependency_files(seeds)
    for mod in ("cartsim.stochastic.kernel", "cartsim.stochastic.network",
                "cartsim.models.cd7_kernel"):
        assert mod in files, mod
    stamp = "cartsim_stochastic_sources.sha256"
    cache.refresh_cache(seeds=seeds, stamp_name=stamp)
    assert cache.refresh_cache(seeds=seeds, stamp_name=stamp) is False
