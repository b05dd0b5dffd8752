"""The app's controls as data: what each one sets, in clinical words and units, and how its
text becomes a scenario.

Every control is a :class:`Control`: a config key (``patient.weight_kg``,
``regimen.car_dose_per_kg``), a plain-language label with its unit, and a kind that says how
its text is read. :func:`read_inputs` turns the texts of the patient's controls and of each
scenario's into the ``patient`` and ``regimens`` mappings of
:func:`cartsim.plot.run_what_if`, and :func:`check_inputs` builds each scenario through
:func:`cartsim.load_config` (the command line's checks) and returns, per control, the one-line
message the library gives. Nothing here imports a GUI toolkit: the tests drive it directly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from cartsim.scenario import ScenarioError

FLOAT, DAYS, OPTIONAL_FLOAT, CHOICE, FLAG = "float", "days", "optional float", "choice", "flag"

DISEASES = {"tall": "T-ALL (T-cell acute lymphoblastic leukemia)",
            "tlbl": "T-LBL (T-lymphoblastic lymphoma, mediastinal mass)",
            "cd7_aml": "CD7+ AML / MPAL"}
PRODUCTS = ("nanobody", "ns7car", "ko", "nanobody_donor", "ns7car_donor", "ko_donor", "allo_ko")
"""Every preset of ``conf/product`` (the README's order)."""
INTERVENTION_MODES = {"none": "not given", "rule": "when IL-6 exceeds a threshold",
                      "days": "on chosen days"}
SCHEDULES = {"single": "single infusion", "split": "split over several days"}
HSCT_CRITERIA = {"mrd_negative_cr": "MRD-negative remission (blasts < 0.01%)",
                 "cr": "remission (blasts < 5%)", "all": "every patient"}


@dataclass(frozen=True)
class Control:
    """One control: the config key it sets, its label (with unit) and kind.

    ``key`` is a config key, or a name starting with ``_`` for a control that only chooses
    how other controls apply (the intervention modes, single or split dosing).
    """

    key: str
    label: str
    kind: str = FLOAT
    default: str = ""
    options: tuple = ()
    help: str = ""

    @property
    def name(self) -> str:
        """The key's last part (``weight_kg``), or the key of a ``_`` control."""
        return self.key.rsplit(".", 1)[-1]


PATIENT = (
    Control("disease", "Disease", CHOICE, "tall", tuple(DISEASES)),
    Control("patient.weight_kg", "Body weight (kg)", default="70"),
    Control("patient.height_cm", "Height (cm)", default="170"),
    Control("patient.marrow_blast_pct", "Marrow blasts before treatment (% of marrow cells)",
            default="40"),
    Control("patient.cd7neg_blast_fraction",
            "CD7-negative share of the blasts (fraction 0-1; 0.0001 = 1 in 10,000)",
            default="1e-06"),
    Control("disease.em_volume_cm3",
            "Extramedullary (e.g. mediastinal) mass (cm\u00b3; 0 = none; empty = the disease's "
            "usual value)", OPTIONAL_FLOAT, ""),
    Control("patient.crcl_ml_min", "Creatinine clearance (mL/min)", default="96"),
    Control("patient.lymphocytes_per_ul", "Lymphocytes before lymphodepletion (cells/\u00b5L)",
            default="800"),
    Control("patient.anc_per_ul", "Neutrophils (ANC) before lymphodepletion (cells/\u00b5L)",
            default="2500"),
)
"""The patient's controls: one patient, shared by every scenario."""

SCENARIO = (
    Control("product", "CAR-T product", CHOICE, "nanobody", PRODUCTS),
    Control("regimen.car_dose_per_kg", "CAR-T dose (CAR+ cells per kg; e.g. 1e6)",
            default="1e6"),
    Control("_schedule", "Schedule", CHOICE, "single", tuple(SCHEDULES)),
    Control("regimen.car_days", "Infusion days (day 0 = first infusion; e.g. 0, 3)", DAYS,
            "0, 3"),
    Control("regimen.car_fractions", "Share of the dose on each day (summing to 1; e.g. 0.5, "
            "0.5)", DAYS, "0.5, 0.5"),
    Control("regimen.flu_mg_m2", "Fludarabine (mg/m\u00b2 per day)", default="30"),
    Control("regimen.cy_mg_m2", "Cyclophosphamide (mg/m\u00b2 per day)", default="300"),
    Control("regimen.ld_days", "Lymphodepletion days (before day 0; e.g. -5, -4, -3)", DAYS,
            "-5, -4, -3"),
    Control("_toci", "Tocilizumab", CHOICE, "none", tuple(INTERVENTION_MODES)),
    Control("regimen.toci_il6_threshold", "Tocilizumab when IL-6 exceeds (pg/mL)",
            OPTIONAL_FLOAT, "250"),
    Control("regimen.toci_days", "Tocilizumab on days (e.g. 1, 3)", DAYS, "1"),
    Control("_steroid", "Dexamethasone", CHOICE, "none", tuple(INTERVENTION_MODES)),
    Control("regimen.steroid_il6_threshold", "Dexamethasone when IL-6 exceeds (pg/mL)",
            OPTIONAL_FLOAT, "1000"),
    Control("regimen.steroid_days", "Dexamethasone on days (e.g. 2, 4)", DAYS, "2"),
    Control("regimen.hsct_day", "Allogeneic transplant on day (empty = none)", OPTIONAL_FLOAT,
            ""),
    Control("regimen.hsct_criterion", "Transplant given to", CHOICE, "mrd_negative_cr",
            tuple(HSCT_CRITERIA)),
    Control("regimen.reinfusion_days", "Re-infusion on days (empty = none)", DAYS, ""),
    Control("regimen.reinfusion_dose_per_kg", "Re-infusion dose (CAR+ cells per kg)",
            default="1e6"),
)
"""One scenario's controls: product, dose and schedule, lymphodepletion, interventions."""

CONTROLS = {c.key: c for c in PATIENT + SCENARIO}

OPTION_LABELS = {"disease": DISEASES, "_schedule": SCHEDULES, "_toci": INTERVENTION_MODES,
                 "_steroid": INTERVENTION_MODES, "regimen.hsct_criterion": HSCT_CRITERIA}


@functools.cache
def product_labels() -> dict[str, str]:
    """Product preset -> its plain-language label (``conf/product/<name>.yaml``)."""
    import cartsim

    return {p: cartsim.load_config([f"product={p}"]).product.label for p in PRODUCTS}


def option_labels(key: str) -> dict[str, str]:
    """Option -> label of a choice control."""
    return product_labels() if key == "product" else OPTION_LABELS.get(key, {})


def defaults(controls=PATIENT + SCENARIO) -> dict[str, str]:
    """Key -> default text of each control."""
    return {c.key: c.default for c in controls}


def _refuse(key: str, text, accepted: str) -> ScenarioError:
    """The library's one-line form: ``key=value is not accepted: expected ...``."""
    return ScenarioError(f"{key}={text!r} is not accepted: expected {accepted}")


def parse(control: Control, text):
    """The value of ``control`` from its text (a choice or flag may come as a value).

    Raises
    ------
    ScenarioError
        Text that is not a number, a list of days or one of the options, in the library's
        words (``regimen.car_dose_per_kg='abc' is not accepted: expected a finite number``).
    """
    key, kind = control.key, control.kind
    if kind == CHOICE:
        if text not in control.options:
            raise _refuse(key, text, "one of " + ", ".join(control.options))
        return text
    if kind == FLAG:
        return bool(text)
    raw = "" if text is None else str(text).strip()
    if kind == DAYS:
        parts = [p for p in raw.replace(";", ",").replace("[", "").replace("]", "").split(",")
                 if p.strip()]
        try:
            days = [float(p) for p in parts]
        except ValueError:
            raise _refuse(key, raw, "days as numbers separated by commas (e.g. 0, 3)") from None
        if not all(math.isfinite(d) for d in days):
            raise _refuse(key, raw, "finite days")
        return days
    if kind == OPTIONAL_FLOAT and raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise _refuse(key, raw, "a finite number") from None
    if not math.isfinite(value):
        raise _refuse(key, raw, "a finite number")
    return value


@dataclass
class Inputs:
    """The comparison the controls describe: one patient, named regimens (the mappings of
    :func:`cartsim.plot.run_what_if`) and what could not be read (key -> message)."""

    patient: dict
    regimens: dict
    errors: dict


def read_patient(texts: Mapping[str, object]) -> tuple[dict, dict, dict]:
    """Patient fields, the scenario-wide keys (disease and its mass), and errors."""
    patient, shared, errors = {}, {}, {}
    for c in PATIENT:
        try:
            value = parse(c, texts.get(c.key, c.default))
        except ScenarioError as exc:
            errors[c.key] = str(exc)
            continue
        if c.key.startswith("patient."):
            patient[c.name] = value
        elif value is not None:
            shared[c.key] = value
    return patient, shared, errors


def read_regimen(texts: Mapping[str, object]) -> tuple[dict, dict]:
    """A regimen mapping (``product`` and dotted/regimen keys) and errors of one scenario."""
    values, errors = {}, {}
    for c in SCENARIO:
        try:
            values[c.key] = parse(c, texts.get(c.key, c.default))
        except ScenarioError as exc:
            errors[c.key] = str(exc)
    reg = {"product": values.get("product", "nanobody")}
    skip = set(errors)
    if values.get("_schedule", "single") == "single":
        skip |= {"regimen.car_days", "regimen.car_fractions"}
    for drug in ("toci", "steroid"):
        mode = values.get(f"_{drug}", "none")
        reg[f"{drug}_il6_threshold"] = values.get(f"regimen.{drug}_il6_threshold") \
            if mode == "rule" else None
        reg[f"{drug}_days"] = values.get(f"regimen.{drug}_days", []) if mode == "days" else []
        skip |= {f"regimen.{drug}_il6_threshold", f"regimen.{drug}_days"}
    if not values.get("regimen.reinfusion_days"):
        skip.add("regimen.reinfusion_dose_per_kg")
    for key, value in values.items():
        if key.startswith("regimen.") and key not in skip:
            reg[key.split(".", 1)[1]] = value
    return reg, errors


def read_inputs(patient_texts: Mapping[str, object],
                scenario_texts: Mapping[str, Mapping[str, object]]) -> Inputs:
    """The comparison of the controls' texts: errors keyed ``patient:<key>`` and
    ``<scenario name>:<key>``."""
    patient, shared, errors = read_patient(patient_texts)
    errors = {f"patient:{k}": v for k, v in errors.items()}
    regimens = {}
    for name, texts in scenario_texts.items():
        reg, errs = read_regimen(texts)
        regimens[name] = {**reg, **shared}
        errors.update({f"{name}:{k}": v for k, v in errs.items()})
    return Inputs(patient, regimens, errors)


def control_of(message: str, scope: str) -> str | None:
    """The control a library message is about (``regimen.car_fractions[1]=...`` ->
    ``regimen.car_fractions``), as ``scope:key``; ``None`` when no control sets it."""
    head = message.split("=", 1)[0].split(" ", 1)[0].split("[", 1)[0].lstrip("+")
    if head in CONTROLS:
        c = CONTROLS[head]
        return f"{'patient' if c in PATIENT else scope}:{head}"
    if head == "product" or head.startswith("product."):
        return f"{scope}:product"
    return None


@functools.cache
def preset(product: str, disease: str):
    """The configured scenario of a product and disease preset (composed once)."""
    import cartsim

    return cartsim.load_config([f"product={product}", f"disease={disease}"])


def build_scenario(patient: Mapping, regimen: Mapping, *, t_end: float = 365.0):
    """The scenario of a patient and a regimen mapping, as
    ``cartsim.load_config(what_if_overrides(patient, regimen, t_end=t_end))`` builds it, but
    from the composed preset (:func:`preset`), so a check takes milliseconds: the schema's
    own checks (:mod:`cartsim.scenario`) run on every replaced part.

    Raises
    ------
    ScenarioError
        The library's one-line message of the first refused value.
    """
    from dataclasses import replace

    sc = preset(regimen.get("product", "nanobody"), regimen.get("disease", "tall"))
    disease = {k.split(".", 1)[1]: v for k, v in regimen.items() if k.startswith("disease.")}
    reg = {k: v for k, v in regimen.items() if "." not in k and k not in ("product", "disease")}
    return replace(sc, patient=replace(sc.patient, **patient),
                   disease=replace(sc.disease, **disease),
                   regimen=replace(sc.regimen, **reg),
                   output=replace(sc.output, t_end=float(t_end)))


def check_inputs(inputs: Inputs, *, t_end: float = 365.0) -> dict[str, str]:
    """Every scenario built (:func:`build_scenario`, the library's checks): ``scope:key`` ->
    the library's one-line message, for the texts that could not be read and the first
    value each scenario refuses. Empty when everything is accepted."""
    errors = dict(inputs.errors)
    bad_scopes = {k.split(":", 1)[0] for k in errors}
    for name, reg in inputs.regimens.items():
        if name in bad_scopes:
            continue
        try:
            build_scenario(inputs.patient, reg, t_end=t_end)
        except ScenarioError as exc:
            message = str(exc).splitlines()[0]
            errors[control_of(message, name) or f"{name}:"] = message
    return errors


def scenarios(inputs: Inputs, *, t_end: float = 365.0) -> dict:
    """Name -> :func:`build_scenario` of every regimen (raises the first refusal)."""
    return {name: build_scenario(inputs.patient, reg, t_end=t_end)
            for name, reg in inputs.regimens.items()}
