"""The pipelined ``simulate`` of a large batch (issue 18 item 3) gives the Dataset of the
unpipelined run bitwise, and each patient's rows are those of the patient simulated alone.

A batch larger than ``cartsim.simulation.PIPELINE_CHUNK`` is built and solved block by
block (in a worker thread, into one buffer; a block's problems dropped once it is solved;
float32 states taken linear and rounded block by block). The independent
truths here: every patient simulated on its own (``simulate(scenario)``, one patient, no
pipeline), and the same batch with the pipeline switched off (one block: ``prepare``,
``solve_prepared``, ``finish``, the path every batch took before).
"""

import dataclasses

import numba
import numpy as np
import pytest

import cartsim
from cartsim import simulation
from cartsim.models.cd7 import Cd7Model
from cartsim.parameters.cd7 import CD7_PARAMETERS as PARS

BLOCK = 8  # patients in the first block in these tests: blocks of 8, 16 and the rest


def _cohort(n=27):
    """Distinct patients: parameters, covariates, IL-6 rules that fire or not, reinfusion;
    ``max_steps`` low enough that some solves fail (NaN rows from the failure, a status)."""
    base = cartsim.Scenario(solver=cartsim.SolverOptions(max_steps=590))
    rng = np.random.default_rng(18)
    out = []
    for i in range(n):
        reg = dataclasses.replace(base.regimen, toci_il6_threshold=(30.0, 50.0, 1e9)[i % 3],
                                  steroid_il6_threshold=(200.0, 1e9)[i % 2])
        if i % 7 == 2:
            reg = dataclasses.replace(reg, reinfusion_days=[30.0])
        out.append(dataclasses.replace(
            base, regimen=reg,
            model=cartsim.ModelConfig(params={
                k: float(np.clip(PARS[k].value * np.exp(rng.normal(0, 0.3)), PARS[k].lower,
                                 PARS[k].upper)) for k in ("k_kill", "rho_max", "delta_e")}),
            patient=dataclasses.replace(base.patient, weight_kg=float(rng.uniform(40, 110)),
                                        marrow_blast_pct=float(rng.uniform(5, 90)))))
    return out


def _unpipelined(scs, **kw):
    batch = simulation.prepare(scs, method=kw.pop("method", None))
    return simulation.finish(batch, simulation.solve_prepared(batch), **kw)


def _same(a, b):
    """``Dataset.identical`` and every variable bitwise (NaN payloads included), the
    creation time (a clock reading) aside."""
    a, b = a.copy().load(), b.copy().load()
    for ds in (a, b):
        created = ds.attrs.pop("created")
        ds.attrs["history"] = ds.attrs["history"].replace(created, "")
    assert a.identical(b)
    for name, var in a.variables.items():
        assert var.dtype == b[name].dtype, name
        if var.dtype.kind in "fiub":
            assert var.values.tobytes() == b[name].values.tobytes(), name
        assert var.encoding == b[name].variable.encoding, name


@pytest.fixture
def blocks(monkeypatch):
    monkeypatch.setattr(simulation, "PIPELINE_CHUNK", BLOCK)


@pytest.fixture(scope="module")
def cohort():
    return _cohort()


def test_the_pipeline_is_taken_and_equals_the_unpipelined_batch(blocks, monkeypatch, cohort):
    calls = []
    solve = simulation.solve_problems

    def spy(model, problems, t_eval, **kw):
        calls.append((len(problems), numba.get_num_threads(), kw.get("y_out") is not None))
        return solve(model, problems, t_eval, **kw)

    monkeypatch.setattr(simulation, "solve_problems", spy)
    numba.set_num_threads(1)
    try:
        piped = cartsim.simulate(cohort)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    # blocks of 8, 16 (each twice the one before) and the 3 left, each on the caller's
    # number of Numba threads, into one buffer
    assert calls == [(8, 1, True), (16, 1, True), (3, 1, True)]
    calls.clear()
    _same(piped, _unpipelined(cohort))  # on every thread count Numba has here
    assert calls == [(len(cohort), numba.get_num_threads(), False)]


def test_each_patient_of_the_pipeline_is_the_patient_alone(blocks, cohort):
    piped = cartsim.simulate(cohort)
    status = piped["status"].values
    assert (status == 0).any() and (status != 0).any()  # solved and failed patients
    for rule in ("tocilizumab", "dexamethasone"):
        days = piped[f"{rule}_rule_day"].values
        assert np.isfinite(days).any() and np.isnan(days).any(), rule
    for i, sc in enumerate(cohort):
        one = cartsim.simulate(sc)
        for name, var in one.data_vars.items():
            assert "patient" in var.dims, name
            want, got = var.values[0], piped[name].values[i]
            if var.dtype.kind == "U":
                assert got == want, (i, name)
            else:
                assert np.asarray(got).tobytes() == np.asarray(want).tobytes(), (i, name)


def test_a_later_patient_starting_earlier_resolves_the_blocks_solved_before(blocks,
                                                                            monkeypatch,
                                                                            cohort):
    """The batch starts at its earliest start: a block solved before a later block's patient
    with earlier lymphodepletion was built is built and solved again from there.

    The pipeline builds a block only once the block two before it is solved (its problems
    dropped), so the first block (patients 0-7, day -5) is solved before the last block,
    with the early patient (day -7), is built; it is then built and solved again from
    day -7, as is the second block if it started before the early patient was built."""
    scs = list(cohort)
    early = len(scs) - 2  # in the last block
    scs[early] = dataclasses.replace(scs[early], regimen=dataclasses.replace(
        scs[early].regimen, ld_days=[-7.0, -6.0, -5.0]))
    starts, builds = [], []
    solve, build = simulation.solve_problems, Cd7Model.build

    def spy_solve(model, problems, t_eval, **kw):
        starts.append((len(problems), kw["t0"]))
        return solve(model, problems, t_eval, **kw)

    def spy_build(self, scenario):
        builds.append(scs.index(scenario))
        return build(self, scenario)

    monkeypatch.setattr(simulation, "solve_problems", spy_solve)
    monkeypatch.setattr(Cd7Model, "build", spy_build)
    piped = cartsim.simulate(scs)
    monkeypatch.undo()
    assert starts[0] == (8, -5.0) and (3, -7.0) in starts
    assert starts.count((8, -7.0)) == 1  # the first block, again
    second = [t0 for size, t0 in starts if size == 16]  # once from -7, or from -5 and again
    assert second[-1] == -7.0 and len(second) == (2 if second[0] == -5.0 else 1)
    assert builds.count(0) == 2 and builds.count(early) == 1
    _same(piped, _unpipelined(scs))


def test_the_pipeline_holds_the_problems_of_two_blocks_at_most(blocks, monkeypatch, cohort):
    """A block's problems are dropped once it is solved, before the block two after it is
    built (``PIPELINE_AHEAD``): blocks of 8, 16 and 3 hold at most 16 + 3 problems while
    the last is built, not all 27 (a 10,000-patient batch: 37 MB of them at its peak)."""
    import gc
    import weakref

    assert simulation.PIPELINE_AHEAD == 2
    made, live = [], []
    build = Cd7Model.build

    def spy_build(self, scenario):
        gc.collect()
        live.append(sum(ref() is not None for ref in made))
        problem = build(self, scenario)
        made.append(weakref.ref(problem))
        return problem

    monkeypatch.setattr(Cd7Model, "build", spy_build)
    piped = cartsim.simulate(cohort)
    monkeypatch.undo()
    assert len(made) == len(cohort)
    assert live[:24] == list(range(24))  # blocks 0 and 1 built, neither solved yet
    assert max(live[24:]) <= 16 + 2  # block 0 dropped before block 2 is built
    _same(piped, _unpipelined(cohort))


@pytest.mark.parametrize("kw", [dict(variables=["car_total", "il6", "marrow_blast_pct"]),
                                dict(method="rodas4")])
def test_options_give_the_unpipelined_dataset(blocks, cohort, kw):
    _same(cartsim.simulate(cohort[:19], **kw), _unpipelined(cohort[:19], **dict(kw)))


def test_an_output_grid_off_the_endpoint_grid(blocks, cohort):
    weekly = [dataclasses.replace(s, output=dataclasses.replace(s.output, dt=7.0))
              for s in cohort[:17]]
    piped = cartsim.simulate(weekly)
    assert "endpoint_time" in piped.dims
    _same(piped, _unpipelined(weekly))


def test_transplants_are_planned_on_the_whole_batch(blocks, monkeypatch, cohort):
    scs = [dataclasses.replace(s, regimen=dataclasses.replace(s.regimen, hsct_day=60.0))
           if i % 2 else s for i, s in enumerate(cohort[:18])]
    monkeypatch.setattr(simulation, "_simulate_pipelined", None)  # must not be called
    _same(cartsim.simulate(scs), _unpipelined(scs))


def test_float32_states_are_the_float64_states_rounded_once(blocks, cohort):
    """``state_dtype="float32"`` (opt-in): every state is the float64 run's value rounded to
    float32 (rounded once, from the linear float64 value), pipelined or not; the
    observables stay float64, computed from the rounded states, within a few float32
    roundings of the float64 run's."""
    wide = cartsim.simulate(cohort)
    narrow = cartsim.simulate(cohort, state_dtype="float32")
    _same(narrow, _unpipelined(cohort, state_dtype="float32"))
    model = simulation.get_model("cd7")
    for name in model.state_names:
        assert narrow[name].dtype == np.float32, name
        want = wide[name].values.astype(np.float32)
        assert narrow[name].values.tobytes() == want.tobytes(), name
    lazy = narrow[model.state_names[0]].variable._data.array.array
    assert lazy.source.y.dtype == np.float32  # the one buffer the Dataset holds
    ok = narrow["status"].values == 0
    for name, var in wide.data_vars.items():
        if name in model.state_names or var.dims != ("patient", "time"):
            continue
        assert narrow[name].dtype == np.float64, name
        a, b = var.values[ok], narrow[name].values[ok]
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-30, err_msg=name)
    for name in ("status", "n_steps", "tocilizumab_rule_day"):
        assert narrow[name].values.tobytes() == wide[name].values.tobytes(), name


def test_an_unknown_state_dtype_is_refused_by_name():
    with pytest.raises(ValueError, match=r"^state_dtype must be one of \['float64', "
                                         r"'float32'\], got 'float16'$"):
        cartsim.simulate(cartsim.Scenario(), state_dtype="float16")


def test_the_endpoints_of_float32_states_are_those_of_float64_within_its_rounding(cohort):
    """On this cohort (no patient within a float32 rounding of a threshold) every response,
    MRD and event category is the same, and every continuous endpoint within 1e-6."""
    wide = cartsim.endpoints(cartsim.simulate(cohort))
    narrow = cartsim.endpoints(cartsim.simulate(cohort, state_dtype="float32"))
    assert list(narrow.data_vars) == list(wide.data_vars)
    for name, var in wide.data_vars.items():
        if var.dtype.kind == "f":
            np.testing.assert_allclose(narrow[name].values, var.values, rtol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(narrow[name].values, var.values, err_msg=name)
