"""ZeroShotPredictor.with_labels: a predictor of other labels that shares the loaded models, leaves
the predictor it came from as it was, and does not interfere with another label set in use at the
same time (taskkit serve scores each request's own labels this way)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

TEXTS = ["The striker scored twice in the cup final.", "Shares fell after the bank cut its forecast.",
         "A new telescope photographed a distant galaxy.", "The prime minister met foreign leaders.",
         "Add the flour and bake for twenty minutes.", "The band's new album tops the charts."]
SAVED = {"Sports": "sports", "Business": None}
FOOD_MUSIC = {"cooking": "recipes and food", "music": "songs, bands and albums", "travel": None}
NEWS = ["World", "Sports", "Business", "Sci/Tech"]  # names only: the topic task's descriptions fill in


def _zero_shot(labels, tiny_nli: Path, tiny_encoder: Path, **kw):
    import taskkit

    return taskkit.zero_shot(labels, task="topic", backend="both", model=str(tiny_nli), encoder=str(tiny_encoder),
                             **kw)


def test_with_labels_scores_other_labels_with_the_same_models_and_leaves_the_original(tiny_nli, tiny_encoder):
    from taskkit.calibration import Calibration

    base = _zero_shot(SAVED, tiny_nli, tiny_encoder, precision="fp32", unlabelled=TEXTS * 2)
    assert base.head is not None  # self-trained on the saved labels
    base.calibration = Calibration("temperature", 2.0)
    before = base.predict_proba(TEXTS)

    other = base.with_labels(FOOD_MUSIC)
    assert other.labels.names == ("cooking", "music", "travel") and not other.labels.multi_label
    assert other.scorer() is base.scorer() and other.encoder() is base.encoder()  # nothing loaded again
    assert other.head is None  # the self-trained head was fit to the saved labels
    assert other.calibration == Calibration("temperature", 2.0)  # a temperature applies to any labels
    # the same probabilities as a predictor built for these labels from scratch
    fresh = _zero_shot(FOOD_MUSIC, tiny_nli, tiny_encoder, precision="fp32")
    fresh.calibration = Calibration("temperature", 2.0)
    proba = other.predict_proba(TEXTS)
    assert proba.shape == (len(TEXTS), 3)
    np.testing.assert_allclose(proba, fresh.predict_proba(TEXTS), atol=1e-6)
    # the original still scores its own labels, with its head, as before
    assert base.labels.names == ("Sports", "Business") and base.head is not None
    np.testing.assert_allclose(base.predict_proba(TEXTS), before, atol=1e-6)

    news = base.with_labels(NEWS)  # a name without a description takes the task's own
    assert news.descriptions["Sports"] == base.task.label_descriptions["Sports"]
    scale = Calibration("vector", 1.0, 0.0, (1.5, 0.5), (0.1, -0.1))  # one scale per saved label
    base.calibration = scale
    assert base.with_labels(NEWS).calibration is None and base.calibration == scale


def test_two_label_sets_used_at_once_do_not_interfere(tiny_nli, tiny_encoder):
    base = _zero_shot(SAVED, tiny_nli, tiny_encoder, precision="auto")
    first, second = base.with_labels(FOOD_MUSIC), base.with_labels(NEWS)
    alone = {id(first): first.predict_proba(TEXTS), id(second): second.predict_proba(TEXTS)}
    precision = base.scorer().precision
    jobs = [first, second] * 12
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda p: (p, p.predict_proba(TEXTS), p.predict(TEXTS)), jobs))
    for predictor, proba, predicted in results:
        np.testing.assert_allclose(proba, alone[id(predictor)], atol=1e-6)
        assert set(predicted) <= set(predictor.labels.names)
    assert {len(proba[0]) for _, proba, _ in results} == {3, 4}
    assert base.scorer().precision == precision  # no call changed the shared scorer
    assert base.labels.names == ("Sports", "Business")
