"""The model interface shared by the ODE solver, the stochastic engine and the outputs.

A ``Model`` pairs a compiled right-hand side (selected by ``model_id`` in
``cartsim.models.kernels``) with its Python-side description: state names,
units and transforms, the parameter set, how a ``Scenario`` becomes an initial
state, a parameter vector and a dose-event table (``build``), and how states
map to what assays report (``observables``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from cartsim.parameters.base import ParameterSet

#: Event kinds understood by the solver (``cartsim.solvers``): add an amount
#: (linear units) to a state, set a parameter slot, add to a parameter slot,
#: multiply a state (linear units) by a factor.
ADD_STATE, SET_PARAM, ADD_PARAM, MUL_STATE = 0, 1, 2, 3


@dataclass(frozen=True)
class StateSpec:
    """One model state.

    ``log`` states are integrated as ln(value) (cell counts: positive by
    construction, uniform relative accuracy from 1 to 1e13 cells); ``atol`` is
    the absolute tolerance in solver coordinates (for a log state it is a
    relative tolerance on the count).
    """

    name: str
    units: str
    long_name: str
    log: bool = False
    atol: float = 1e-8


@dataclass(frozen=True)
class Observable:
    """One derived output: values with units and a long name."""

    data: np.ndarray
    units: str
    long_name: str


@dataclass
class Problem:
    """Everything the solver needs for one patient.

    ``y0`` in solver coordinates (ln for log states); ``p`` the kernel
    parameter vector (model parameters then patient/regimen-derived slots);
    ``events`` and ``rules`` are ``cartsim.solvers.api`` tables.
    """

    y0: np.ndarray
    p: np.ndarray
    t0: float
    events: object
    rules: object
    info: dict = field(default_factory=dict)


class Model(ABC):
    """Abstract model: equations live in the compiled kernel, numbers in ``parameters``."""

    name: str
    model_id: int
    states: tuple[StateSpec, ...]
    default_method: str = "rodas4"

    @property
    @abstractmethod
    def parameters(self) -> ParameterSet:
        """The default parameter set."""

    @abstractmethod
    def build(self, scenario) -> Problem:
        """Initial state, parameter vector and dose events for one scenario."""

    @abstractmethod
    def observables(self, y: np.ndarray, p: np.ndarray, info: dict) -> dict[str, Observable]:
        """Assay-level outputs from linear states ``y[patient, time, state]``,
        parameter vectors ``p[patient, n_p]`` and per-patient ``info`` arrays."""

    @property
    def state_names(self) -> list[str]:
        return [s.name for s in self.states]

    @property
    def log_mask(self) -> np.ndarray:
        return np.array([s.log for s in self.states], dtype=np.bool_)

    @property
    def atol(self) -> np.ndarray:
        return np.array([s.atol for s in self.states], dtype=np.float64)

    def to_linear(self, y: np.ndarray) -> np.ndarray:
        """Solver coordinates -> linear state values (exp of log states).

        ``y`` has the state on its last axis. The result has the same shape and is a
        view of a state-major copy, so that ``out[..., i]`` (one state) is contiguous:
        the per-state variables of a Dataset are then plain blocks, and the exponentials
        run in place over contiguous rows (a masked fancy-index assignment costs several
        times more on a large batch).
        """
        y = np.asarray(y, dtype=np.float64)
        out = np.moveaxis(y, -1, 0).copy()  # (state, ...)
        for i in np.flatnonzero(self.log_mask):
            np.exp(out[i], out=out[i])
        return np.moveaxis(out, 0, -1)
