"""The run folder's pictures (PNG, matplotlib's Agg canvas: headless, no pyplot state).

``taskkit run`` draws, where the run has what each needs:

- ``confusion_matrix.png``: single-label tasks, gold against predicted on the evaluated split
  (rows normalised; counts written in the cells of small matrices);
- ``reliability.png``: accuracy against confidence in 15 bins, before and after calibration
  (:mod:`taskkit.calibration`), with the ECE of each;
- ``training_curve.png``: training loss and the dev metric per epoch or step, from the training
  record's history (full, peft, few-shot's contrastive phase and torch head);
- ``per_label_f1.png``: multi-label tasks, the F1 of each label.

They are saved inside ``model/`` and linked from the run folder like ``metrics.json``
(:func:`taskkit.artifacts.save_run`; names in :data:`taskkit.ownership.PLOT_FILES`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

    from taskkit.calibration import RunCalibration
    from taskkit.contracts import Predictor

DPI = 100
MAX_TICKS = 30  # label names on the confusion matrix's axes up to this many classes


def for_run(predictor: Predictor, metrics: dict[str, Any], records: Sequence[dict[str, Any]],
            calibrating: RunCalibration | None = None) -> dict[str, bytes]:
    """File name -> PNG bytes of every picture this run can draw."""
    labels = predictor.labels
    out: dict[str, bytes] = {}
    gold = [r.get("gold") for r in records]
    predicted = [r.get("predicted") for r in records]
    single = not labels.multi_label and all(isinstance(g, str) for g in gold) and \
        all(p is None or isinstance(p, str) for p in predicted)
    if records and single:
        out["confusion_matrix.png"] = confusion_matrix(gold, predicted, labels.names)  # type: ignore[arg-type]
    if calibrating is not None and calibrating.before is not None and calibrating.rows is not None \
            and len(calibrating.rows):
        from taskkit.probability_scores import scores

        multi = labels.multi_label
        before, after = calibrating.before[calibrating.rows], calibrating.after[calibrating.rows]  # type: ignore[index]
        truth = calibrating.gold
        assert truth is not None  # set with rows
        curves = [("before calibration", before)]
        if calibrating.report.get("method", "none") != "none":
            curves.append(("after calibration", after))
        out["reliability.png"] = reliability([(name, *_confidence(p, truth, multi), scores(p, truth, multi)["ece"])
                                              for name, p in curves])
    history = _histories(metrics.get("training"))
    if history:
        watched = (metrics.get("training") or {}).get("watched_metric")
        out["training_curve.png"] = training_curve(history, watched if isinstance(watched, str) else None)
    per_class = metrics.get("per_class")
    if labels.multi_label and isinstance(per_class, dict) and per_class:
        out["per_label_f1.png"] = per_label_f1({k: float(v.get("f1-score", 0.0)) for k, v in per_class.items()
                                                if isinstance(v, dict)})
    return out


def _confidence(p: np.ndarray, gold: np.ndarray, multi_label: bool) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    if multi_label:
        return p.ravel(), np.asarray(gold, dtype=float).ravel()
    return p.max(axis=1), (p.argmax(axis=1) == gold).astype(float)


def _histories(training: Any) -> list[tuple[str, list[dict[str, Any]]]]:
    """(phase, rows) of each training history in a training record (its dict form)."""
    if not isinstance(training, dict):
        return []
    found = []
    if isinstance(training.get("history"), list):
        found.append(("training", training["history"]))
    for phase in ("contrastive", "head_training"):
        part = training.get(phase)
        if isinstance(part, dict) and isinstance(part.get("history"), list):
            found.append((phase.replace("_", " "), part["history"]))
    return [(name, [r for r in rows if isinstance(r, dict)]) for name, rows in found if rows]


def _png(figure: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def confusion_matrix(gold: Sequence[str], predicted: Sequence[str | None], names: Sequence[str]) -> bytes:
    """Rows: gold labels, columns: predictions (an abstention, intent's threshold-only ``oos``
    and the like get a column of their own), each row normalised to 1."""
    import numpy as np
    from matplotlib.figure import Figure

    shown = [str(p) if p is not None else "(none)" for p in predicted]
    order = list(names) + sorted({*gold, *shown} - set(names))
    index = {n: i for i, n in enumerate(order)}
    counts = np.zeros((len(order), len(order)))
    for g, p in zip(gold, shown):
        counts[index[g], index[p]] += 1
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = min(14.0, max(4.5, 0.35 * len(order) + 2.5))
    figure = Figure(figsize=(side + 1.0, side))
    ax = figure.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the gold row")
    if len(order) <= MAX_TICKS:
        ax.set_xticks(range(len(order)), order, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(order)), order, fontsize=8)
        if len(order) <= 12:
            for i in range(len(order)):
                for j in range(len(order)):
                    if counts[i, j]:
                        ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=8,
                                color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    accuracy = float(np.trace(counts[: len(names), : len(names)]) / max(1, len(gold)))
    ax.set_title(f"confusion matrix ({len(gold)} examples, accuracy {accuracy:.3f})")
    return _png(figure)


def reliability(curves: Sequence[tuple[str, np.ndarray, np.ndarray, float]]) -> bytes:
    """Accuracy against confidence (15 bins) for each ``(name, confidence, correct, ece)``; the
    bars below count the predictions in each bin."""
    from matplotlib.figure import Figure

    from taskkit.probability_scores import reliability as points

    figure = Figure(figsize=(6.0, 6.5))
    ax, counts = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    for (name, confidence, correct, ece), marker in zip(curves, ("o", "s")):
        bins = points(confidence, correct)
        xs, ys, ns = [b[0] for b in bins], [b[1] for b in bins], [b[2] for b in bins]
        ax.plot(xs, ys, marker=marker, label=f"{name} (ECE {ece:.3f})")
        counts.bar(xs, ns, width=1 / 30, alpha=0.6, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title("reliability (15 bins)")
    ax.legend(loc="upper left", fontsize=8)
    counts.set_xlabel("confidence")
    counts.set_ylabel("predictions")
    return _png(figure)


def training_curve(histories: Sequence[tuple[str, list[dict[str, Any]]]], watched: str | None = None) -> bytes:
    """Per phase: training loss (left axis) and up to four dev metrics (right axis; the ``watched``
    one first) per epoch or step."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 3.6 * len(histories)))
    axes = figure.subplots(len(histories), 1, squeeze=False)[:, 0]
    for ax, (phase, rows) in zip(axes, histories):
        x_key = "epoch" if any("epoch" in r for r in rows) else "step"
        xs = [r.get(x_key) for r in rows]
        loss = [(x, r["train_loss"]) for x, r in zip(xs, rows) if isinstance(r.get("train_loss"), (int, float))]
        if loss:
            ax.plot(*zip(*loss), marker="o", color="tab:red", label="training loss")
        ax.set_xlabel(x_key)
        ax.set_ylabel("training loss")
        dev = ax.twinx()
        keys = sorted({k for r in rows for k, v in r.items() if k.startswith("dev_") and isinstance(v, (int, float))
                       and k not in ("dev_examples", "dev_abstained")}, key=lambda k: (k != f"dev_{watched}", k))
        for key in keys[:4]:
            points = [(x, r[key]) for x, r in zip(xs, rows) if isinstance(r.get(key), (int, float))]
            dev.plot(*zip(*points), marker="s", label=key.replace("_", " "))
        dev.set_ylabel("dev metric")
        handles = ax.get_legend_handles_labels()[0] + dev.get_legend_handles_labels()[0]
        names = ax.get_legend_handles_labels()[1] + dev.get_legend_handles_labels()[1]
        if handles:
            ax.legend(handles, names, loc="best", fontsize=8)
        ax.set_title(f"{phase}: loss and dev metric per {x_key}")
    figure.tight_layout()
    return _png(figure)


def per_label_f1(f1: dict[str, float]) -> bytes:
    """A horizontal bar per label, best first."""
    from matplotlib.figure import Figure

    items = sorted(f1.items(), key=lambda kv: kv[1])
    figure = Figure(figsize=(6.5, max(3.0, 0.25 * len(items) + 1.2)))
    ax = figure.add_subplot()
    ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title("per-label F1 (evaluated split)")
    return _png(figure)
