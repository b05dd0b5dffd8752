"""Models: the mechanistic ``cd7`` model and the empirical ``stein2019`` model.

``get_model(name)`` returns the model object (state specs, parameter set,
``build`` and ``observables``); the compiled right-hand sides are selected by
``model.model_id`` in :mod:`cartsim.models.kernels`.
"""

from __future__ import annotations

from cartsim.models.base import Model

MODEL_NAMES = ("cd7", "stein2019")


def get_model(name: str) -> Model:
    """The model called ``name`` (one of :data:`MODEL_NAMES`)."""
    if name == "cd7":
        from cartsim.models.cd7 import Cd7Model

        return Cd7Model()
    if name == "stein2019":
        from cartsim.models.stein2019 import Stein2019

        return Stein2019()
    raise ValueError(f"model.name={name!r} is not accepted: expected one of "
                     f"{', '.join(MODEL_NAMES)}")
