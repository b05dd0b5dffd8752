"""Forward model of a fit: parameter values -> predicted observations, in batches.

:class:`ForwardModel` holds, for every patient of an
:class:`~cartsim.fitting.data.Observations` table, its scenario and the times
and analytes it was observed at. :meth:`ForwardModel.predict` takes a batch
of (patient, parameter vector) pairs and integrates them as one compiled,
parallel batch (:func:`cartsim.simulation.solve_problems`), returning the
predicted value of every observation. A failed solve gives NaN predictions
(and hence ``-inf`` log-likelihood), never an exception.

The ``stein2019`` model is evaluated with its closed form
(:func:`cartsim.models.stein2019.closed_form`), which is exact and agrees
with the ODE solution including the tocilizumab / steroid factors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from cartsim.fitting.data import ANALYTES, Observations
from cartsim.fitting.scenario_parameters import observation_parameters, scenario_parameters
from cartsim.models import get_model
from cartsim.parameters.base import Parameter, ParameterError
from cartsim.scenario import OutputOptions, Scenario, ScenarioError
from cartsim.sweep.axes import Axis, apply_point

__all__ = ["ForwardModel"]


class ForwardModel:
    """Predictions of the observed analytes of a cohort at given parameter values.

    Parameters
    ----------
    data : the observations (their patients, times and analytes).
    scenarios : one scenario per patient (``data.scenarios(base)``); all with the same model.
    parameters : names of the parameters that :meth:`predict` sets (other
        parameters keep the scenario's values): model parameters, or for ``cd7`` the
        patient-level scenario fields of :mod:`cartsim.fitting.scenario_parameters`
        (baseline marrow blasts, blast growth, CD7-negative fraction, CD7 density) and
        per-patient observation parameters (``f_blood_blast``), which reach the observables
        only, never the equations.
    method, rtol : ODE solver settings for the fit (``bdf`` at ``1e-8`` keeps
        finite-difference derivatives smooth at a low cost).
    """

    def __init__(self, data: Observations, scenarios: Sequence[Scenario],
                 parameters: Sequence[str], *, method: str = "bdf", rtol: float = 1e-8):
        if len(scenarios) != data.n_patients:
            raise ValueError(f"{len(scenarios)} scenarios for {data.n_patients} patients")
        self.data = data
        self.model_name = scenarios[0].model.name
        self.model = get_model(self.model_name)
        self.parameters = list(parameters)
        pset = self.model.parameters
        self.scenario_fields = scenario_parameters(self.model_name)
        self.observation_fields = observation_parameters(self.model_name)
        for name in self.parameters:
            if (name not in pset and name not in self.scenario_fields
                    and name not in self.observation_fields):
                fields = (f"; patient-level: {', '.join(self.scenario_fields)}"
                          if self.scenario_fields else "")
                if self.observation_fields:
                    fields += f"; observation: {', '.join(self.observation_fields)}"
                raise ScenarioError(f"fit.parameters: {name!r} is not a parameter of model "
                                    f"{self.model_name!r}; accepted: {', '.join(pset)}{fields}")
        # the names that act on the equations (model parameters, scenario fields) and the
        # columns of the observation parameters, which go to the observables only
        self._dynamic = [k for k, n in enumerate(self.parameters)
                         if n not in self.observation_fields]
        self._observed = [(n, k) for k, n in enumerate(self.parameters)
                          if n in self.observation_fields]
        self._axes = [self._axis(self.parameters[k]) for k in self._dynamic]
        available = set(self._output_names())
        for a in data.analytes:
            if a not in available:
                raise ScenarioError(f"{data.source}: analyte {a!r} is not an output of model "
                                    f"{self.model_name!r} (it has {', '.join(sorted(available))})")
        self.level_unit = None
        if self.model_name == "stein2019":
            if len(data.analytes) > 1:
                raise ScenarioError(
                    f"{data.source}: model 'stein2019' describes one analyte (its level C and "
                    f"Cmax take that analyte's unit), the data hold {', '.join(data.analytes)}: "
                    "fit each analyte separately")
            self.level_unit = ANALYTES[data.analytes[0]].units
        self.method, self.rtol = method, rtol
        self.index = [np.flatnonzero(data.patient == i) for i in range(data.n_patients)]
        self.times = []
        self.scenarios = []
        for i, sc in enumerate(scenarios):
            t = np.unique(data.time[self.index[i]])
            self.times.append(t)
            out = OutputOptions(t_start=float(min(t[0], -5.0)), t_end=float(t[-1]) + 1.0,
                                times=[float(x) for x in t])
            self.scenarios.append(dataclasses.replace(sc, output=out))
        self.defaults = np.array([self.base_value(n) for n in self.parameters])

    def _output_names(self) -> list[str]:
        if self.model_name == "stein2019":
            from cartsim.models.stein2019 import LEVEL_ANALYTES

            return list(LEVEL_ANALYTES)
        return [*_CD7_OBSERVABLES, *self.model.state_names]

    def _axis(self, name: str) -> Axis:
        """Where a fitted name lands in a scenario: a model parameter or a scenario field."""
        if name in self.scenario_fields:
            key, spec = self.scenario_fields[name]
            section, fld = key.split(".")
            return Axis(name, "field", section, fld, spec.unit, spec.description)
        spec = self.model.parameters[name]
        return Axis(name, "param", "model", name, spec.unit, spec.description)

    def spec(self, name: str) -> Parameter:
        """Bounds, unit and source of fitted name ``name``: the model's parameter, or the
        patient-level scenario field or observation parameter
        (:mod:`cartsim.fitting.scenario_parameters`)."""
        if name in self.scenario_fields:
            return self.scenario_fields[name].spec
        if name in self.observation_fields:
            return self.observation_fields[name].spec
        return self.model.parameters[name]

    def parameter_unit(self, name: str) -> str:
        """Unit of parameter ``name`` in this fit: the parameter set's (or the scenario
        field's), except for the ``stein2019`` level parameters, which take the unit of the
        fitted analyte."""
        if self.level_unit is not None:
            from cartsim.models.stein2019 import LEVEL_PARAMETERS

            if name in LEVEL_PARAMETERS:
                return self.level_unit
        return self.spec(name).unit

    def base_value(self, name: str, patient: int = 0) -> float:
        """The value of ``name`` in a patient's scenario (override, covariate or default)."""
        sc = self.scenarios[patient]
        if name in self.scenario_fields:
            section, fld = self.scenario_fields[name].key.split(".")
            return float(getattr(getattr(sc, section), fld))
        if name in self.observation_fields:  # the model's physiology constant
            return float(self.model.physiology[name].value)
        return float(sc.model.params.get(name, self.model.parameters[name].value))

    # -- prediction ---------------------------------------------------------------------------
    def predict(self, patients: Sequence[int], values: np.ndarray) -> list[np.ndarray]:
        """Predicted observations for each (patient, parameter vector) pair.

        Parameters
        ----------
        patients : patient index of every evaluation, shape (n_eval,).
        values : parameter values (model units, order of ``parameters``), shape
            (n_eval, n_par).

        Returns
        -------
        list of numpy.ndarray
            For evaluation ``e``, the predictions of patient ``patients[e]``'s
            observations (order of ``data`` rows of that patient); NaN where the
            solve failed or the values were rejected by the model.
        """
        values = np.atleast_2d(np.asarray(values, dtype=np.float64))
        patients = [int(p) for p in patients]
        if self.model_name == "stein2019":
            return self._stein(patients, values)
        return self._ode(patients, values)

    def _scenario(self, i: int, v: np.ndarray) -> Scenario:
        """Patient ``i``'s scenario with the fitted values ``v`` (model parameters and
        scenario fields; observation parameters are left out), validated by the scenario's
        own checks."""
        return apply_point(self.scenarios[i], self._axes, [float(v[k]) for k in self._dynamic])

    def _stein_setup(self) -> None:
        """Per patient: the kernel parameter vector of its scenario and its dosing days;
        the slot and bounds of every fitted parameter; patients grouped by dosing days, with
        the union of their observation times and where each patient's times sit in it
        (built once, see :meth:`_stein`)."""
        from cartsim.models import stein2019_kernel as K

        pset = self.model.parameters
        names = list(pset)
        self._slots = np.array([names.index(n) for n in self.parameters], dtype=np.int64)
        self._lo = np.array([pset[n].lower for n in names])
        self._hi = np.array([pset[n].upper for n in names])
        p0, doses = [], []
        for sc in self.scenarios:
            p = np.zeros(K.N_BASE)
            p[:] = pset.with_values(sc.model.params).values() if sc.model.params \
                else pset.values()
            reg = sc.regimen
            p0.append(p)
            doses.append((float(reg.car_days[0]),
                          float(reg.toci_days[0]) if reg.toci_days else None,
                          float(reg.steroid_days[0]) if reg.steroid_days else None))
        self._p0 = np.array(p0)
        groups: dict[tuple, list[int]] = {}
        for i, d in enumerate(doses):
            groups.setdefault(d, []).append(i)
        self._group_doses = list(groups)
        self._group_of = np.empty(len(doses), dtype=np.int64)
        self._group_times, self._group_cols = [], np.empty(len(doses), dtype=object)
        for g, members in enumerate(groups.values()):
            t = np.unique(np.concatenate([self.data.time[self.index[i]] for i in members]))
            self._group_times.append(t)
            for i in members:
                self._group_of[i] = g
                self._group_cols[i] = np.searchsorted(t, self.data.time[self.index[i]])
        self._i_alpha, self._i_beta = K.P_ALPHA, K.P_BETA

    def _stein(self, patients: list[int], values: np.ndarray) -> list[np.ndarray]:
        """Closed-form predictions, one array operation per dosing schedule: the patients
        that share their dosing days are evaluated together at the union of their
        observation times (the closed form is elementwise in time, so this is the same
        number as evaluating each patient alone). Values outside the parameters' bounds or
        with ``alpha <= beta`` give NaN (as the model's ``parameter_vector`` rejects them)."""
        from cartsim.models.stein2019 import closed_form

        if not hasattr(self, "_p0"):
            self._stein_setup()
        pats = np.asarray(patients, dtype=np.int64)
        P = self._p0[pats]
        P[:, self._slots] = values
        ok = (np.all(np.isfinite(P), axis=1) & np.all(P >= self._lo, axis=1)
              & np.all(P <= self._hi, axis=1) & (P[:, self._i_alpha] > P[:, self._i_beta]))
        out: list[np.ndarray] = [None] * len(patients)  # type: ignore[list-item]
        for rows, t, doses, gather, splits in self._stein_plan(pats):
            with np.errstate(all="ignore"):
                c = closed_form(t, P[rows], t_inf=doses[0], toci_day=doses[1],
                                ster_day=doses[2])
            c[~ok[rows]] = np.nan
            pieces = list(c) if gather is None else np.split(c.ravel()[gather], splits)
            for k, piece in zip(rows, pieces):
                out[k] = piece
        return out

    def _stein_plan(self, pats: np.ndarray) -> list[tuple]:
        """How a batch of patients ``pats`` is evaluated: per dosing group, its rows of the
        batch, the times, the dosing days, and (several patients) the flat index of every
        row's own times in the ``(rows, times)`` result with the split points between rows.
        Kept for the last batch: SAEM evaluates the same patients at every step."""
        key = pats.tobytes()
        if getattr(self, "_plan_key", None) == key:
            return self._plan
        plan = []
        group = self._group_of[pats]
        for g in np.unique(group):
            rows = np.flatnonzero(group == g)
            members = np.unique(pats[rows])
            if members.size == 1:  # one patient (an individual fit): its own times only
                plan.append((rows, self.data.time[self.index[members[0]]],
                             self._group_doses[g], None, None))
                continue
            t = self._group_times[g]
            cols = [self._group_cols[p] for p in pats[rows]]
            gather = np.concatenate([r * t.size + c for r, c in enumerate(cols)])
            splits = np.cumsum([c.size for c in cols])[:-1]
            plan.append((rows, t, self._group_doses[g], gather, splits))
        self._plan_key, self._plan = key, plan
        return plan

    def _ode(self, patients: list[int], values: np.ndarray) -> list[np.ndarray]:
        from cartsim.simulation import solve_problems

        model = self.model
        problems, ok = [], []
        for i, v in zip(patients, values):
            try:
                problems.append(model.build(self._scenario(i, v)))
                ok.append(True)
            except (ParameterError, ScenarioError):
                problems.append(model.build(self.scenarios[i]))
                ok.append(False)
        t_all = np.unique(np.concatenate([self.times[i] for i in set(patients)]))
        res = solve_problems(model, problems, t_all, method=self.method, rtol=self.rtol,
                             atol=model.atol, max_steps=200_000)
        y = model.to_linear(np.asarray(res.y))
        p = np.stack([pr.p for pr in problems])
        keys = [k for k, val in problems[0].info.items() if np.isscalar(val)]
        info = {k: np.array([pr.info[k] for pr in problems]) for k in keys}
        for name, k in self._observed:  # per evaluation, read by the observables
            spec = self.observation_fields[name].spec
            v = values[:, k]
            ok = [o and bool(spec.lower <= x <= spec.upper) for o, x in zip(ok, v)]
            info[name] = np.clip(np.nan_to_num(v, nan=spec.value), spec.lower, spec.upper)
        needed = set(self.data.analyte.tolist())
        outputs = {k: np.asarray(o.data) for k, o in model.observables(y, p, info).items()
                   if k in needed}
        names = model.state_names
        for a in needed - set(outputs):
            outputs[a] = y[..., names.index(a)]
        status = np.asarray(res.status)
        preds = []
        for e, i in enumerate(patients):
            idx = self.index[i]
            col = np.searchsorted(t_all, self.data.time[idx])
            out = np.empty(idx.size)
            for a in np.unique(self.data.analyte[idx]):
                m = self.data.analyte[idx] == a
                out[m] = outputs[a][e, col[m]]
            if status[e] != 0 or not ok[e]:
                out[:] = np.nan
            preds.append(out)
        return preds


_CD7_OBSERVABLES = ("car_copies_per_ug", "car_cells_per_ul", "car_pct_of_t", "car_total",
                    "marrow_blast_pct", "blast_cd7neg_pct", "blast_per_ul", "blast_cd7pos_per_ul",
                    "blast_cd7neg_per_ul", "t_cd7pos_per_ul", "t_cd7neg_per_ul",
                    "anc_per_ul", "wbc_per_ul", "flu_conc", "cy_conc")
