"""Calibrated probabilities: a temperature (or vector scaling) fitted on dev, saved, applied in ``predict_proba``.

A predictor that declares :attr:`~taskkit.contracts.Predictor.calibratable` exposes its uncalibrated
``logits`` (the scores its task's softmax or sigmoid turns into probabilities; for predictors that
average probabilities, their logarithm) and passes them through its :attr:`calibration` before its
task's ``probabilities``. The core (:func:`for_run`, called by :func:`taskkit.run` after the mode's
``fit``) fits that calibration once for every mode, by minimising the negative log-likelihood:

- on the run's dev split (the data's, or the one carved from train);
- without one (``--shots`` on data without dev), by cross-validation: the mode is fitted again on
  three folds of the training examples and the calibration is fitted on its out-of-fold logits;
  zero-shot modes use no labels, so they are calibrated only when the data has a dev split.

Single-label: one temperature (``softmax(z / T)``, which never moves the arg-max: the default, so
that calibrating never changes a prediction), or with ``--option calibrate=vector``, vector scaling
(``softmax(a * z + b)``, a scale and a bias per class, Guo et al. 2017) where it clearly helps: its
5-fold cross-validated dev NLL at least 3% lower than the temperature's and its accuracy not lower.
Multi-label: one temperature on the sigmoid logits, pivoted at the model's decision cut
(``(z - c) / T + c`` with ``c = logit(cut)``), so that no label's decision moves.

Reported before and after (:mod:`taskkit.probability_scores`): ECE (15 bins), Brier score and NLL. ``--option
calibrate=false`` keeps the model's own probabilities. Token tasks are not calibrated (their
task is not :attr:`~taskkit.contracts.Task.calibratable`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskkit.errors import TaskkitError
from taskkit.probability_scores import scores

if TYPE_CHECKING:
    import numpy as np

    from taskkit.contracts import Example, Mode, Predictor, RunConfig, Splits

EPS = 1e-7
FOLDS = 3  # cross-validation folds when there is no dev split
MIN_HELD = 20  # fewer held-out examples than this leave the model uncalibrated (a temperature would overfit)
VECTOR_GAIN = 0.03  # vector scaling must lower the cross-validated NLL by this share to be chosen


@dataclass(frozen=True)
class Calibration:
    """A fitted map from logits to calibrated logits; ``taskkit.json`` keeps :meth:`as_dict`."""

    method: str = "temperature"  # temperature | vector
    temperature: float = 1.0
    pivot: float = 0.0  # multi-label: logit of the decision cut, which the temperature leaves in place
    scale: tuple[float, ...] | None = None  # vector scaling: one scale and one bias per class
    bias: tuple[float, ...] | None = None

    def apply(self, logits: np.ndarray) -> np.ndarray:
        import numpy as np

        z = np.asarray(logits, dtype=np.float64)
        if self.method == "vector" and self.scale is not None and self.bias is not None:
            return z * np.asarray(self.scale) + np.asarray(self.bias)
        return (z - self.pivot) / self.temperature + self.pivot

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "temperature": round(self.temperature, 6)}
        if self.pivot:
            out["pivot"] = round(self.pivot, 6)
        if self.method == "vector":
            out["scale"], out["bias"] = list(self.scale or ()), list(self.bias or ())
        return out

    @classmethod
    def from_dict(cls, data: Any, classes: int, where: str = "taskkit.json") -> Calibration:
        """A saved calibration, checked: one line naming the field when it is not one taskkit writes."""
        def number(value: Any) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool)

        if not isinstance(data, dict) or data.get("method") not in ("temperature", "vector"):
            raise TaskkitError(f"{where}: settings.calibration must be an object with method temperature or vector")
        temperature, pivot = data.get("temperature", 1.0), data.get("pivot", 0.0)
        if not number(temperature) or not temperature > 0 or not number(pivot):
            raise TaskkitError(f"{where}: settings.calibration.temperature must be a number > 0")
        if data["method"] == "temperature":
            return cls("temperature", float(temperature), float(pivot))
        scale, bias = data.get("scale"), data.get("bias")
        for name, values in (("scale", scale), ("bias", bias)):
            if not isinstance(values, list) or len(values) != classes or not all(number(v) for v in values):
                raise TaskkitError(f"{where}: settings.calibration.{name} must be a list of {classes} numbers")
        return cls("vector", float(temperature), 0.0, tuple(map(float, scale)), tuple(map(float, bias)))  # type: ignore[arg-type]


class SavedCalibration:
    """A predictor's ``calibration`` kept in its ``settings`` dict (so in ``taskkit.json``); a folder
    saved without one (older taskkit, ``calibrate=false``) reads as ``None``: the identity."""

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        saved = obj.settings.get("calibration")
        return None if saved is None else Calibration.from_dict(saved, len(obj.labels))

    def __set__(self, obj: Any, value: Calibration | None) -> None:
        if value is None:
            obj.settings.pop("calibration", None)
        else:
            obj.settings["calibration"] = value.as_dict()


# --- probabilities <-> logits -------------------------------------------------------------------
def as_logits(probabilities: np.ndarray, multi_label: bool) -> np.ndarray:
    """Logits whose softmax (sigmoid, multi-label) gives ``probabilities`` back: what a predictor
    averaging probabilities (an ensemble, zero-shot) calibrates."""
    import numpy as np

    p = np.clip(np.asarray(probabilities, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p) if multi_label else np.log(p)


def calibrated(predictor: Predictor, logits: np.ndarray) -> np.ndarray:
    """``predict_proba`` from uncalibrated logits: the predictor's calibration, then its task's
    softmax / sigmoid."""
    import numpy as np

    calibration = predictor.calibration
    z = logits if calibration is None else calibration.apply(logits)
    return np.asarray(predictor.task.probabilities(np.asarray(z, dtype=np.float32), predictor.labels))


def calibrated_probabilities(predictor: Predictor, probabilities: np.ndarray) -> np.ndarray:
    """``predict_proba`` of a predictor whose own scores are probabilities (an ensemble, zero-shot):
    unchanged without a calibration, else calibrated through their logits (:func:`as_logits`)."""
    if predictor.calibration is None or not len(probabilities):
        return probabilities
    return calibrated(predictor, as_logits(probabilities, predictor.labels.multi_label))


def _proba(z: np.ndarray, multi_label: bool) -> np.ndarray:
    from scipy.special import expit, softmax

    return expit(z) if multi_label else softmax(z, axis=-1)


# --- scores -------------------------------------------------------------------------------------
def targets(predictor: Predictor, examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, gold): the examples whose gold is among the labels (intent's threshold-only ``oos``
    is not) and, for them, the gold class index (single-label) or 0/1 matrix (multi-label)."""
    import numpy as np

    names = {n: j for j, n in enumerate(predictor.labels.names)}
    gold = predictor.task.gold(examples, predictor.labels)
    if predictor.labels.multi_label:
        matrix = np.zeros((len(gold), len(names)), dtype=np.float64)
        for i, labels in enumerate(gold):
            matrix[i, [names[n] for n in labels if n in names]] = 1.0
        return np.arange(len(gold)), matrix
    rows = [i for i, g in enumerate(gold) if g in names]
    return np.array(rows, dtype=int), np.array([names[gold[i]] for i in rows], dtype=int)


# --- fitting ------------------------------------------------------------------------------------
def nll(z: np.ndarray, gold: np.ndarray, multi_label: bool) -> float:
    import numpy as np
    from scipy.special import log_softmax

    if multi_label:
        return float(np.mean(np.logaddexp(0, z) - gold * z))  # binary cross-entropy of sigmoid(z)
    return float(-np.mean(log_softmax(z, axis=1)[np.arange(len(z)), gold]))


def fit_temperature(logits: np.ndarray, gold: np.ndarray, multi_label: bool = False, pivot: float = 0.0) -> Calibration:
    """The temperature (between 0.05 and 20) minimising the NLL of ``(logits - pivot) / T + pivot``."""
    import numpy as np
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64)
    found = minimize_scalar(lambda log_t: nll((z - pivot) / np.exp(log_t) + pivot, gold, multi_label),
                            bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-4})
    return Calibration("temperature", float(np.exp(found.x)), pivot)


def fit_vector(logits: np.ndarray, gold: np.ndarray, start: Calibration, strength: float = 1e-3) -> Calibration:
    """Vector scaling ``a * z + b`` (a scale and a bias per class) by L-BFGS from the temperature's
    solution, held near it by a small L2 penalty."""
    import numpy as np
    from scipy.optimize import minimize
    from scipy.special import softmax

    z = np.asarray(logits, dtype=np.float64)
    n, k = z.shape
    onehot = np.eye(k)[gold]
    log_a0 = -np.log(start.temperature)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        log_a, b = theta[:k], theta[k:]
        shifted = z * np.exp(log_a) + b
        value = nll(shifted, gold, False) + strength * (np.sum((log_a - log_a0) ** 2) + np.sum(b ** 2))
        g = (softmax(shifted, axis=1) - onehot) / n
        grad_a = np.sum(g * z, axis=0) * np.exp(log_a) + 2 * strength * (log_a - log_a0)
        grad_b = np.sum(g, axis=0) + 2 * strength * b
        return value, np.concatenate([grad_a, grad_b])

    found = minimize(objective, np.concatenate([np.full(k, log_a0), np.zeros(k)]), jac=True, method="L-BFGS-B",
                     options={"maxiter": 500})
    return Calibration("vector", start.temperature, 0.0, tuple(np.exp(found.x[:k]).tolist()),
                       tuple(found.x[k:].tolist()))


def choose(logits: np.ndarray, gold: np.ndarray, multi_label: bool, pivot: float = 0.0,
           seed: int = 42, vector: bool = False) -> tuple[Calibration, dict[str, Any]]:
    """The calibration fitted on all of ``logits``: a temperature, or (with ``vector``) vector scaling
    where 5-fold cross-validation on these examples says it clearly helps (see the module); with what
    decided."""
    import numpy as np

    temperature = fit_temperature(logits, gold, multi_label, pivot)
    if not vector:
        return temperature, {}
    k = logits.shape[1]
    counts = np.bincount(gold, minlength=k) if not multi_label else None
    if multi_label or counts is None or len(gold) < 10 * k or counts.min() < 5:
        return temperature, {}
    from sklearn.model_selection import StratifiedKFold

    held: dict[str, list[float]] = {"temperature": [], "vector": []}
    right: dict[str, int] = {"temperature": 0, "vector": 0}
    for fit_rows, test_rows in StratifiedKFold(5, shuffle=True, random_state=seed).split(logits, gold):
        t = fit_temperature(logits[fit_rows], gold[fit_rows])
        for name, cal in (("temperature", t), ("vector", fit_vector(logits[fit_rows], gold[fit_rows], t))):
            z = cal.apply(logits[test_rows])
            held[name].append(nll(z, gold[test_rows], False) * len(test_rows))
            right[name] += int(np.sum(z.argmax(1) == gold[test_rows]))
    cv = {name: round(sum(v) / len(gold), 6) for name, v in held.items()}
    decided = {"cross_validated_nll": cv, "cross_validated_accuracy":
               {name: round(v / len(gold), 6) for name, v in right.items()}}
    if cv["vector"] <= (1 - VECTOR_GAIN) * cv["temperature"] and right["vector"] >= right["temperature"]:
        return fit_vector(logits, gold, temperature), decided
    return temperature, decided


@dataclass
class Held:
    """Examples with logits the final model never trained on: dev, or out-of-fold predictions."""

    examples: list[Example]
    logits: np.ndarray
    source: str


def held_out(predictor: Predictor, mode: Mode, splits: Splits, config: RunConfig) -> Held | str:
    """Dev logits, or out-of-fold logits from :data:`FOLDS` refits of ``mode``; else why neither."""
    import numpy as np

    if splits.dev:
        where = "dev carved from train" if splits.dev_carved else "dev split"
        return Held(list(splits.dev), np.asarray(predictor.logits(splits.dev)), f"{where} ({len(splits.dev)} examples)")
    if not mode.needs_training_data:
        return "no labelled dev split (this mode uses no labels; give the data a dev split to calibrate)"
    if not mode.refit_to_calibrate:
        return f"no dev split, and the {mode.name} mode is not trained again on folds to calibrate (give a dev split, or --dev-shots M with --shots)"
    if predictor.labels.multi_label or len(splits.train) < MIN_HELD:
        return "no dev split, and too few training examples to cross-validate"
    from collections import Counter

    from sklearn.model_selection import StratifiedKFold

    classes = [e.get("label") for e in splits.train]
    folds = min(FOLDS, min(Counter(classes).values()))
    if folds < 2:
        return "no dev split, and a class with a single training example: cannot cross-validate"
    names = predictor.labels.names
    logits = np.zeros((len(splits.train), len(names)))
    quiet = config.replace(progress=False, checkpoint_every=None, checkpoint_dir=None, resume=False, init_from=None)
    for fit_rows, test_rows in StratifiedKFold(folds, shuffle=True, random_state=config.seed).split(classes, classes):
        from taskkit.contracts import Splits

        part = Splits(train=[splits.train[i] for i in fit_rows], dev=[], test=[], source=splits.source)
        fold_model = mode.fit(predictor.task, part, quiet)
        if not fold_model.calibratable or set(fold_model.labels.names) != set(names):
            return "no dev split, and a cross-validation fold lacked a class"
        order = [fold_model.labels.names.index(n) for n in names]
        logits[test_rows] = np.asarray(fold_model.logits([splits.train[i] for i in test_rows]))[:, order]
    return Held(list(splits.train), logits, f"{folds}-fold cross-validation on the {len(splits.train)} training examples")


class RunCalibration:
    """One run's calibration: fitted after ``fit`` (:func:`for_run`), then the evaluated split's
    probabilities before and after, and the report for ``metrics.json``."""

    def __init__(self, predictor: Predictor, report: dict[str, Any], held: Held | None = None) -> None:
        self.predictor, self.report, self.held = predictor, report, held
        self.before: np.ndarray | None = None
        self.after: np.ndarray | None = None
        self.rows: np.ndarray | None = None
        self.gold: np.ndarray | None = None

    @property
    def active(self) -> bool:
        return self.predictor.calibratable and self.predictor.task.calibratable

    def held_probabilities(self) -> np.ndarray | None:
        """The held-out examples' calibrated probabilities (the threshold is chosen on them)."""
        return None if self.held is None else calibrated(self.predictor, self.held.logits)

    def probabilities(self, examples: Sequence[Example]) -> np.ndarray | None:
        """``examples``' probabilities after calibration (None: the predictor is not calibratable);
        keeps those before for :meth:`finish`."""
        if not self.active or not examples:
            return None
        import numpy as np

        logits = np.asarray(self.predictor.logits(examples))
        self.before = np.asarray(self.predictor.task.probabilities(logits.astype(np.float32), self.predictor.labels))
        self.after = calibrated(self.predictor, logits)
        self.rows, self.gold = targets(self.predictor, examples)
        return self.after

    def finish(self, split: str) -> dict[str, Any]:
        """The report, with ECE / Brier / NLL before and after on the evaluated ``split``."""
        if self.before is not None and self.after is not None and self.rows is not None and len(self.rows):
            multi = self.predictor.labels.multi_label
            before = scores(self.before[self.rows], self.gold, multi)  # type: ignore[arg-type]
            after = scores(self.after[self.rows], self.gold, multi)  # type: ignore[arg-type]
            self.report[split] = {"before": before, "after": after, "examples": len(self.rows)}
        return self.report


def for_run(predictor: Predictor, mode: Mode, splits: Splits, config: RunConfig) -> RunCalibration:
    """Fit ``predictor``'s calibration for a run (unless ``--option calibrate=false``), then choose
    its single-label decision threshold again on the held-out probabilities (calibrated ones, when fitted)."""
    from taskkit.contracts import ModeOptions
    from taskkit.options import read

    task = predictor.task
    if not (predictor.calibratable and task.calibratable):
        return RunCalibration(predictor, {"method": "none", "reason": "this predictor or task has no logits "
                                                                         "to calibrate"})
    predictor.calibration = None  # a continued model's old calibration does not fit the new weights
    started = time.perf_counter()
    method = read(config, ModeOptions).calibrate
    wanted = method is not False
    held = held_out(predictor, mode, splits, config) if wanted or splits.dev else None  # no refits for a cut alone
    report: dict[str, Any] = fit_on(predictor, held, config.seed, method == "vector") if wanted else \
        {"method": "none", "reason": "--option calibrate=false"}
    result = RunCalibration(predictor, report, held if isinstance(held, Held) else None)
    if result.held is not None and not predictor.labels.multi_label:
        # a cut on the top probability (intent's oos_threshold=auto) is chosen on the calibrated ones
        chosen = task.choose_threshold(predictor, result.held.examples, predictor.labels, config,
                                       result.held_probabilities())
        if chosen is not None:
            predictor.threshold = chosen
            report["threshold"] = chosen
    report["seconds"] = round(time.perf_counter() - started, 2)
    return result


def fit_on(predictor: Predictor, held: Held | str | None, seed: int, vector: bool = False) -> dict[str, Any]:
    """Fit and set ``predictor.calibration`` on ``held``; the report (or why nothing was fitted)."""
    import numpy as np

    if not isinstance(held, Held):
        return {"method": "none", "reason": held or "no held-out examples"}
    rows, gold = targets(predictor, held.examples)
    multi = predictor.labels.multi_label
    logits = held.logits[rows]
    if len(rows) < MIN_HELD:
        return {"method": "none", "reason": f"{len(rows)} labelled examples in the {held.source}: too few to fit "
                                            f"a temperature (at least {MIN_HELD})"}
    pivot = 0.0
    if multi:
        cut = min(max(predictor.threshold if predictor.threshold is not None else 0.5, EPS), 1 - EPS)
        pivot = float(np.log(cut) - np.log1p(-cut))
    calibration, decided = choose(logits, gold, multi, pivot, seed, vector)
    predictor.calibration = calibration
    return {**calibration.as_dict(), "fitted_on": held.source, **decided,
            "held_out_nll": {"before": round(nll(logits, gold, multi), 6),
                             "after": round(nll(calibration.apply(logits), gold, multi), 6)}}
