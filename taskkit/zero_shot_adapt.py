"""Zero-shot scores fitted to the user's texts without any label: label-bias correction and the
weights of the two backends.

Label bias: a hypothesis such as "This text is about an ordinary message." can be entailed (or
close in embedding space) for every input, so one label wins everywhere. Each backend's per-label
logits (NLI: entailment logits; embedding: cosine / temperature) are shifted by a per-label offset:

- ``texts``: each label's mean logit over unlabelled texts (the run's train texts with their labels
  unused, or the texts being scored), i.e. every label's score centred over the user's own data;
- ``content-free`` (on request): each label's logit for inputs that say nothing ("N/A", "", "[MASK]":
  contextual calibration, Zhao et al. 2021). Tried as the default without unlabelled texts, it moved
  accuracy both ways (benchmarks/RESULTS.md), so with fewer than MIN_TEXTS texts nothing is corrected.

Centring assumes no label is much rarer than the others among the texts; a re-estimate of the
label priors by EM (Saerens et al., 2002) on top was tried and lost accuracy on every slice.

Backend weights: with enough unlabelled texts, each candidate mix of ``nli`` and ``embedding``
labels the texts, and a lexical classifier (complement naive Bayes on tf-idf), a view of the texts
that neither backend uses, is fitted on half of those pseudo-labels and predicts the other half (and the
other way round), over several random halvings. The mix whose labels the words recover best (Cohen's
kappa, which gives nothing to a labelling that puts every text in one class) wins if the words
recover it well and clearly better than the default even mix; otherwise the default stands (for
sentiment the words recover no labelling well from a few hundred texts). A backend that labels by
noise or by one hypothesis's bias yields labels no lexical model can learn. The same check may
drop self-training, only when the labels without it are clearly the more learnable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from taskkit.zero_shot_predictor import ZeroShotPredictor

#: inputs that carry no content: their scores measure each hypothesis's prior
CONTENT_FREE = ("N/A", "", "[MASK]")
#: fewer unlabelled texts than this: no correction (unless asked); a label's mean over 20 texts is
#: already far steadier than the bias it removes (often a whole logit)
MIN_TEXTS = 20
#: fewer than this: the default weights and self-training (a lexical classifier fitted on half of
#: fewer texts says little)
MIN_WEIGH_TEXTS = 100
#: the candidate shares of the nli backend in ``both`` (the rest is the embedding backend's)
NLI_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_NLI_SHARE = 0.5
CORRECTIONS = ("auto", "texts", "content-free", "none")


def centred(offset: np.ndarray) -> np.ndarray:
    """An offset with mean 0 over the labels (a common shift changes no softmax)."""
    return (offset - offset.mean()).astype("float32")


def offset_from(logits: np.ndarray) -> np.ndarray:
    """Each label's mean logit over the rows of ``logits`` (texts, labels), centred."""
    return centred(logits.mean(axis=0))


def which_correction(asked: str, n_texts: int) -> str:
    """``auto``: centring over the texts when there are at least MIN_TEXTS of them, else none
    (content-free inputs moved accuracy both ways on the sets it was tried on: only on request)."""
    if asked != "auto":
        return asked
    return "texts" if n_texts >= MIN_TEXTS else "none"


def lexical_agreement(features: Any, labels: np.ndarray, seed: int = 0) -> float:
    """How well a lexical classifier (complement naive Bayes on tf-idf ``features`` of the texts),
    fitted on one half with ``labels``, recovers the labels of the other half (both ways round):
    Cohen's kappa, 0 for a labelling with one class."""
    import numpy as np
    from sklearn.metrics import cohen_kappa_score
    from sklearn.naive_bayes import ComplementNB

    labels = np.asarray(labels)
    if len(set(labels.tolist())) < 2:
        return 0.0
    order = np.random.default_rng(seed).permutation(len(labels))
    halves = (order[: len(order) // 2], order[len(order) // 2 :])
    predicted = np.empty_like(labels)
    for fit_on, guess in (halves, halves[::-1]):
        predicted[guess] = ComplementNB().fit(features[fit_on], labels[fit_on]).predict(features[guess])
    return float(cohen_kappa_score(labels, predicted))


def lexical_features(texts: Sequence[str]) -> Any:
    """tf-idf of words and word pairs: a view of the texts that neither backend uses."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2)).fit_transform(list(texts))


#: random halvings the lexical check is repeated over (its spread says how far to trust it)
REPEATS = 5
#: below this mean kappa the words recover no mix's labels well enough to rank the mixes
MIN_KAPPA = 0.2


def agreement(features: Any, labels: np.ndarray) -> np.ndarray:
    """:func:`lexical_agreement` over REPEATS random halvings."""
    import numpy as np

    return np.array([lexical_agreement(features, labels, seed) for seed in range(REPEATS)])


def better(candidate: np.ndarray, default: np.ndarray) -> bool:
    """Whether ``candidate``'s kappas beat ``default``'s (paired over the same halvings) by more
    than twice the standard error of their difference and by 0.02 at least."""
    import numpy as np

    gain = candidate - default
    spread = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else 0.0
    return float(gain.mean()) > max(0.02, 2 * spread)


def choose_nli_share(texts: Sequence[str], nli: np.ndarray, embedding: np.ndarray) -> tuple[float, dict[str, Any]]:
    """The share of ``nli`` in the mix of the two backends' probabilities (texts, labels) whose
    labels a lexical classifier recovers best on held-out halves. The default share stands unless
    some mix is recovered well (mean kappa at least MIN_KAPPA) and clearly better than it."""
    features = lexical_features(texts)
    kappas = {share: agreement(features, (share * nli + (1 - share) * embedding).argmax(axis=1)) for share in NLI_SHARES}
    report: dict[str, Any] = {"kappa_by_nli_share": {f"{s:g}": round(float(k.mean()), 4) for s, k in kappas.items()}}
    best = max(NLI_SHARES, key=lambda s: (float(kappas[s].mean()), -abs(s - DEFAULT_NLI_SHARE)))
    if float(kappas[best].mean()) < MIN_KAPPA:
        report["why"] = f"no mix's labels recovered from the words with kappa {MIN_KAPPA} or more: the default"
        return DEFAULT_NLI_SHARE, report
    if best != DEFAULT_NLI_SHARE and not better(kappas[best], kappas[DEFAULT_NLI_SHARE]):
        report["why"] = "no mix clearly better than the default"
        return DEFAULT_NLI_SHARE, report
    return best, report


def keep_self_training(texts: Sequence[str], without: np.ndarray, with_head: np.ndarray) -> tuple[bool, dict[str, float]]:
    """Self-training is kept unless the zero-shot labels alone are clearly the more learnable."""
    features = lexical_features(texts)
    scores = {"without": agreement(features, without.argmax(axis=1)),
              "with": agreement(features, with_head.argmax(axis=1))}
    keep = not better(scores["without"], scores["with"])
    return keep, {k: round(float(v.mean()), 4) for k, v in scores.items()}


def correction_record(kind: str, offsets: dict[str, Any], n_texts: int) -> dict[str, Any]:
    """What metrics.json / training.json says about the label-bias correction."""
    return {"kind": kind, "texts": n_texts if kind == "texts" else 0,
            "offsets": {k: [round(float(x), 4) for x in v] for k, v in offsets.items()}}


def adapt(predictor: ZeroShotPredictor, texts: Sequence[str], correction: str, weigh: bool,
          vectors: np.ndarray | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Fit ``predictor``'s label-bias offsets (saved in its settings) and, for ``both``, its nli
    share to unlabelled ``texts`` (single-label, one hypothesis per label); what was chosen, and
    the backends' logits on ``texts`` where they were scored (else empty)."""
    kind = which_correction(correction, len(texts))
    record: dict[str, Any] = {"texts": len(texts)}
    offsets: dict[str, np.ndarray] = {}
    weighing = predictor.settings["backend"] == "both" and weigh and len(texts) >= MIN_WEIGH_TEXTS
    # the texts' logits, scored once for the correction and the weights
    on_texts = predictor.backend_logits(texts, vectors) if kind == "texts" or weighing else {}
    if kind != "none":
        logits = on_texts if kind == "texts" else predictor.backend_logits(list(CONTENT_FREE))
        offsets = {b: offset_from(x) for b, x in logits.items()}
        predictor.settings["label_bias"] = {"labels": list(predictor.labels.names), "kind": kind,
                                            "offsets": {b: v.tolist() for b, v in offsets.items()}}
    record["correction"] = correction_record(kind, offsets, len(texts))
    if predictor.settings["backend"] == "both":
        if weighing:
            from taskkit.hypothesis_scoring import softmax

            nli, embedding = (softmax(on_texts[b] - offsets.get(b, 0.0)) for b in ("nli", "embedding"))
            share, report = choose_nli_share(texts, nli, embedding)
            record["weights"] = {"nli_share": share, "chosen_by": "lexical agreement (Cohen's kappa) on held-out "
                                 f"halves of the unlabelled texts, {REPEATS} halvings", **report}
        else:
            share = DEFAULT_NLI_SHARE
            record["weights"] = {"nli_share": share, "chosen_by": "default (" + (
                f"fewer than {MIN_WEIGH_TEXTS} unlabelled texts" if weigh else "--option weigh=false") + ")"}
        predictor.settings["nli_share"] = share
    return record, on_texts


def adapt_relation(predictor: ZeroShotPredictor, examples: Sequence[Any], correction: str) -> dict[str, Any]:
    """Relation extraction: label-bias offsets of the positive labels' entailment logits, centred
    over unlabelled examples (hypotheses filled in per example); content-free has no entities to fill."""
    kind = which_correction(correction, len(examples))
    if kind == "content-free":
        kind = "none"
    offsets: dict[str, np.ndarray] = {}
    if kind == "texts":
        logits = predictor.scorer().relation_entailment([e["text"] for e in examples],
                                                        predictor.relation_hypotheses(examples))
        offsets = {"nli": offset_from(logits)}
        predictor.settings["label_bias"] = {"labels": list(predictor.labels.names), "kind": kind,
                                            "offsets": {"nli": offsets["nli"].tolist()}}
    return {"texts": len(examples), "correction": correction_record(kind, offsets, len(examples))}


def abstain_curve(proba: np.ndarray, gold: Sequence[Any], names: Sequence[str], abstain_label: Any,
                  steps: int = 20) -> list[dict[str, float]]:
    """For cuts 0, 1/steps, ...: the share of texts given a label, the accuracy on the texts that
    should have one, and (where gold has ``abstain_label``) the recall of abstentions."""
    import numpy as np

    top, best = proba.max(axis=1), np.asarray(names, dtype=object)[proba.argmax(axis=1)]
    truth = np.asarray(list(gold), dtype=object)
    outside = truth == abstain_label if abstain_label is not None else np.zeros(len(truth), bool)
    rows = []
    for i in range(steps):
        cut = round(i / steps, 4)
        labelled = top >= cut
        row = {"threshold": cut, "coverage": round(float(labelled.mean()), 4),
               "in_scope_accuracy": round(float((labelled & (best == truth))[~outside].mean()) if (~outside).any() else 0.0, 4)}
        if outside.any():
            row["abstain_recall"] = round(float((~labelled)[outside].mean()), 4)
            row["objective"] = round((row["in_scope_accuracy"] + row["abstain_recall"]) / 2, 4)
        rows.append(row)
    return rows


def choose_abstain(predictor: ZeroShotPredictor, dev: Sequence[Any]) -> tuple[float | None, dict[str, Any]]:
    """``abstain=auto``: the cut on the top probability maximising the mean of in-scope accuracy and
    abstention recall on the labelled ``dev`` examples (which must hold some that should get no
    label: the task's abstain label, intent's ``oos``); else no cut. The curve is kept."""
    task, names = predictor.task, predictor.labels.names
    labelled = [e for e in dev if "label" in e]
    if not labelled:
        return None, {"chosen": None, "reason": "no labelled dev split: no cut"}
    curve = abstain_curve(predictor.predict_proba(labelled), [e["label"] for e in labelled], names, task.abstain_label)
    if "objective" not in curve[0]:
        return None, {"chosen": None, "reason": "no dev example should go without a label: a cut only loses "
                      "accuracy", "dev_examples": len(labelled), "curve": curve}
    best = max(curve, key=lambda row: (row["objective"], -row["threshold"]))
    cut = best["threshold"] or None
    return cut, {"chosen": cut, "objective": "mean of in-scope accuracy and abstention recall",
                 "dev_examples": len(labelled), "curve": curve}
