"""Nothing silently cut: few-shot embeddings, zero-shot NLI and embedding scoring read all of an
over-long text (in windows), on tiny random models; the end of a long text changes the result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

LONG = " ".join(["the", "weather", "was", "mild", "and", "the", "street", "quiet"] * 30)


@pytest.fixture(scope="module")
def body_and_tokenizer(tiny_model: Path):
    from transformers import AutoModel, AutoTokenizer

    return AutoModel.from_pretrained(str(tiny_model)).eval(), AutoTokenizer.from_pretrained(str(tiny_model))


def test_few_shot_embedding_averages_the_windows_of_a_long_text(body_and_tokenizer) -> None:
    from taskkit_plugins.few_shot.contrastive import embed

    body, tokenizer = body_and_tokenizer
    a, b = LONG + " a great film", LONG + " a dreadful stock market crash"
    assert len(tokenizer(a)["input_ids"]) > 4 * 32
    rows = embed(body, tokenizer, [a, b, "short text"], max_length=32, precision="fp32")
    assert rows.shape == (3, body.config.hidden_size)
    assert not np.allclose(rows[0], rows[1], atol=1e-6)  # the last words count (they were cut before)
    # the row is the mean of the windows' normalised embeddings, as the predictor averages logits
    enc = tokenizer([a], truncation=True, max_length=32, stride=8, return_overflowing_tokens=True)
    windows = [tokenizer.decode(ids, skip_special_tokens=True) for ids in enc["input_ids"]]
    assert len(windows) > 4
    short = embed(body, tokenizer, ["short text"], max_length=32, precision="fp32")
    np.testing.assert_allclose(rows[2], short[0], atol=1e-5)  # one window: as before, norm 1
    assert abs(float(np.linalg.norm(short[0])) - 1.0) < 1e-4


def test_nli_scores_every_window_of_a_long_premise_and_keeps_the_most_entailed(tiny_nli: Path) -> None:
    from taskkit.hypothesis_scoring import NLIScorer

    scorer = NLIScorer(str(tiny_nli), precision="fp32", max_length=32)
    hypotheses = ["This text is about sports.", "This text is about business."]
    tails = [LONG + " the striker scored twice in the final", LONG + " the bank raised its interest rates"]
    logits = scorer.logits(tails, hypotheses)
    assert logits.shape == (2, 2, 3)
    assert not np.allclose(logits[0], logits[1], atol=1e-6)  # the tail, far past max_length, counts
    # each row is the logits of the window where that hypothesis is most entailed
    ids = scorer.token_ids([tails[0]])[0]
    room = 32 - scorer.layout.special - max(len(b) for b in scorer.token_ids(hypotheses))
    windows = scorer.windows(ids, room)
    assert len(windows) > 4 and windows[-1][-1] == ids[-1] and all(len(w) <= room for w in windows)
    for j, h in enumerate(hypotheses):
        b = scorer.token_ids([h])[0]
        feats = [scorer.layout.join(w, b, 32) for w in windows]
        from taskkit.kernel.infer import predict_logits

        rows = predict_logits(scorer.model, feats, scorer.tokenizer.pad_token_id, 64, "fp32", scorer.device,
                              logits_of=scorer.logits_of)
        best = max(rows, key=lambda r: r[scorer.entail])
        np.testing.assert_allclose(logits[0, j], best, atol=1e-5)
    # a text that fits is scored once, as before
    short = scorer.logits(["the striker scored"], hypotheses)
    assert short.shape == (1, 2, 3) and np.isfinite(short).all()


def test_zero_shot_embedding_backend_averages_windows(tiny_model: Path, tmp_path_factory) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import (
        Normalize,
        Pooling,
        Transformer,
    )

    from taskkit.hypothesis_scoring import EmbeddingScorer

    folder = tmp_path_factory.mktemp("tiny-st-long")
    body = Transformer(str(tiny_model), max_seq_length=32)
    SentenceTransformer(modules=[body, Pooling(32, "mean"), Normalize()], device="cpu").save(str(folder))
    scorer = EmbeddingScorer(str(folder), precision="fp32")
    rows = scorer.encode([LONG + " goal", LONG + " shares", "goal"])
    assert rows.shape == (3, 32) and not np.allclose(rows[0], rows[1], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
