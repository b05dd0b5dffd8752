"""The Dataset holds the solver's states as they come (issue 18 item 3): its log states are
exponentiated when read, never at assembly, and every read gives the values of the eager
conversion bitwise.

Independent truths: ``Model.to_linear`` (the model's own conversion, a gather of the log
states and one ``np.exp``) on a copy of the solver's states, and the eager assembly of the
same result (``variables`` given: states copied out and observables computed at once).
"""

import dataclasses

import numpy as np
import pytest

import cartsim
from cartsim import batch, simulation
from cartsim.parameters.cd7 import CD7_PARAMETERS as PARS


@pytest.fixture(scope="module")
def solved():
    """A prepared batch of 70 distinct patients (more than one ``batch.CHUNK``), solved."""
    base = cartsim.Scenario()
    rng = np.random.default_rng(3)
    scs = [dataclasses.replace(
        base, model=cartsim.ModelConfig(params={
            k: float(np.clip(PARS[k].value * np.exp(rng.normal(0, 0.3)), PARS[k].lower,
                             PARS[k].upper)) for k in ("k_kill", "rho_max")}),
        patient=dataclasses.replace(base.patient, weight_kg=float(rng.uniform(40, 110))))
        for _ in range(70)]
    prepared = simulation.prepare(scs)
    return prepared, simulation.solve_prepared(prepared)


def _assemble(prepared, result, **kw):
    return batch.to_dataset(prepared.model, prepared.problems, prepared.t_record, result,
                            prepared.scenarios, method=prepared.method, **kw)


def test_assembly_leaves_the_solver_states_as_they_are(solved):
    prepared, result = solved
    y = np.array(result.y)
    ds = _assemble(prepared, dataclasses.replace(result, y=y), copy=False)
    assert not y.flags.writeable  # consumed: the Dataset's buffer
    assert y.tobytes() == np.asarray(result.y).tobytes()  # no exponential taken yet
    with pytest.raises(ValueError, match="read-only"):
        _assemble(prepared, dataclasses.replace(result, y=y), copy=False)
    model = prepared.model
    linear = model.to_linear(np.array(result.y))
    assert model.log_mask.any() and not model.log_mask.all()
    for i, name in enumerate(model.state_names):  # whole, then parts (states are not kept)
        assert ds[name].values.tobytes() == linear[..., i].tobytes(), name
        part = ds[name].isel(patient=slice(5, 69, 3), time=slice(2, 300, 7)).values
        assert part.tobytes() == linear[5:69:3, 2:300:7, i].tobytes(), name
        one = ds[name].isel(patient=66, time=40).values
        assert one.tobytes() == linear[66, 40, i].tobytes(), name
    assert y.tobytes() == np.asarray(result.y).tobytes()  # reads never write the buffer


def test_the_lazy_dataset_is_the_eager_one_bitwise(solved):
    prepared, result = solved
    lazy = _assemble(prepared, result)
    names = [n for n, v in lazy.data_vars.items() if v.dims == ("patient", "time")]
    eager = _assemble(prepared, result, variables=names)
    cartsim.endpoints(lazy)  # the group read first (one pass), then every variable
    for name in names:
        assert lazy[name].dtype == eager[name].dtype, name
        assert lazy[name].values.tobytes() == eager[name].values.tobytes(), name
