"""The stale-cache guard: which sources it hashes (it must not flush anything here)."""

from cartsim.solvers import driver


def test_dependency_files_cover_kernels_and_solvers():
    files = driver._dependency_files()
    for mod in ("cartsim.models.kernels", "cartsim.models.cd7_kernel",
                "cartsim.models.stein2019_kernel", "cartsim.models.testproblems",
                "cartsim.solvers.rodas", "cartsim.solvers.dopri", "cartsim.solvers.driver"):
        assert mod in files, mod
    # Python-side modules that the kernels do not import are not part of the hash
    assert "cartsim.solvers.api" not in files


def test_sources_hash_is_stable_and_stamp_current():
    assert driver.sources_hash() == driver.sources_hash()
    # the stamp was written at import (or just now, if a kernel file was edited meanwhile):
    # a repeated check finds it current and flushes nothing
    driver.refresh_cache()
    assert driver.refresh_cache() is False


def test_stochastic_engine_guards_its_cache_against_model_edits():
    """The stochastic engine inlines the cd7 network: its guard hashes the model kernel too
    (a stale cache once served the old reaction layout after a kernel edit: every run hit
    max_steps)."""
    import cartsim.stochastic.kernel  # noqa: F401  (runs the guard at import)

    seeds = ("cartsim.stochastic.kernel",)
    files = driver._dependency_files(seeds)
    for mod in ("cartsim.stochastic.kernel", "cartsim.stochastic.network",
                "cartsim.models.cd7_kernel"):
        assert mod in files, mod
    stamp = "cartsim_stochastic_sources.sha256"
    driver.refresh_cache(seeds=seeds, stamp_name=stamp)
    assert driver.refresh_cache(seeds=seeds, stamp_name=stamp) is False
