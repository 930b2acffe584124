"""The few-shot mode weighs the label names by what they are worth on the shots (issue 17): opaque
code labels get no zero-shot share anywhere, and the chosen shares are in metrics.json."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_jsonl

POSITIVE = ["a wonderful, moving film", "great acting and a clever story", "I loved every minute of it",
            "brilliant and funny", "a delight from start to finish", "beautifully shot and deeply felt"]
NEGATIVE = ["a dull, lifeless mess", "boring and far too long", "I hated every minute of it",
            "clumsy and unfunny", "a waste of two hours", "badly acted and poorly written"]


def test_code_labels_get_no_zero_shot_share(tmp_path: Path):
    from taskkit import api
    from taskkit.ensemble import EnsemblePredictor

    write_jsonl(tmp_path / "train.jsonl", [{"text": t, "label": "L0"} for t in POSITIVE]
                + [{"text": t, "label": "L1"} for t in NEGATIVE])
    write_jsonl(tmp_path / "test.jsonl", [{"text": "the best film this year", "label": "L0"},
                                          {"text": "the worst film this year", "label": "L1"}])
    result = api.run("sentiment", "few-shot", tmp_path, tmp_path / "out", shots=6, seed=0, max_length=32,
                     progress=False, options={"steps": 4})
    training = result.metrics["training"]
    assert training["zero_shot_share"] == 0.0 and training["prior_mix"] == 0.0
    assert training["shares"]["head"] == 0.0 and training["shares"]["ensemble"] == 0.0
    assert training["shares"]["chosen_by"].startswith("cross-validation")
    assert training["contrastive"]["anchors"] == 0  # the codes are not anchor examples either
    assert training["zero_shot"] == "none" and not isinstance(result.predictor, EnsemblePredictor)
    assert not (tmp_path / "out" / "model" / "members").exists()


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_a_given_share_is_kept(tmp_path: Path, share: float):
    """--option zero_shot_weight fixes the member's share (0: no member at all)."""
    from taskkit import api
    from taskkit.ensemble import EnsemblePredictor

    write_jsonl(tmp_path / "train.jsonl", [{"text": t, "label": "positive"} for t in POSITIVE]
                + [{"text": t, "label": "negative"} for t in NEGATIVE])
    write_jsonl(tmp_path / "test.jsonl", [{"text": "the best film this year", "label": "positive"},
                                          {"text": "the worst film this year", "label": "negative"}])
    result = api.run("sentiment", "few-shot", tmp_path, tmp_path / "out", shots=3, seed=0,
                     max_length=32, progress=False, options={"steps": 2, "zero_shot_weight": share, "cv_folds": 0})
    assert result.metrics["training"]["zero_shot_share"] == share
    assert isinstance(result.predictor, EnsemblePredictor) == (share > 0)
    if share > 0:  # the member's mix of its two backends, as the shots chose it, is what the saved folder keeps
        import taskkit

        chosen = result.metrics["training"]["shares"]["member_nli_share"]
        assert chosen in (0.0, 0.25, 0.5, 0.75, 1.0)
        assert taskkit.load(tmp_path / "out" / "model").members[1].settings["nli_share"] == chosen


@pytest.mark.parametrize("correction", ["auto", "none"])
def test_the_member_is_centred_over_the_shots_texts(tmp_path: Path, correction: str):
    """The zero-shot member gets the zero-shot mode's label-bias correction, fitted to the shots'
    texts (24 here, at least the 20 that ``auto`` asks for): each backend's offsets are its logits'
    centred mean over those texts, saved with the member; ``correction=none`` fits none."""
    import numpy as np

    import taskkit
    from taskkit import api

    positive = POSITIVE + [f"{t}, truly" for t in POSITIVE]
    negative = NEGATIVE + [f"{t}, truly" for t in NEGATIVE]
    write_jsonl(tmp_path / "train.jsonl", [{"text": t, "label": "positive"} for t in positive]
                + [{"text": t, "label": "negative"} for t in negative])
    write_jsonl(tmp_path / "test.jsonl", [{"text": "the best film this year", "label": "positive"},
                                          {"text": "the worst film this year", "label": "negative"}])
    result = api.run("sentiment", "few-shot", tmp_path, tmp_path / "out", shots=12, seed=0, max_length=32,
                     progress=False, options={"steps": 2, "zero_shot_weight": 1.0, "cv_folds": 0,
                                              "correction": correction})
    record = result.metrics["training"]["extra"]["member_correction"]
    member = taskkit.load(tmp_path / "out" / "model").members[1]
    if correction == "none":
        assert record["kind"] == "none" and member.label_bias() == {}
        return
    assert record["kind"] == "texts" and record["texts"] == 24
    offsets = member.label_bias()
    assert set(offsets) == {"nli", "embedding"}
    raw = member.backend_logits(positive + negative)
    for backend, logits in raw.items():
        expected = logits.mean(axis=0) - logits.mean()
        np.testing.assert_allclose(offsets[backend], expected, atol=1e-4)
        assert np.abs(offsets[backend]).max() > 1e-3  # a real shift, not an empty correction


def test_the_member_correction_through_the_cli(tmp_path: Path, run_taskkit):
    """As a user types it: `taskkit run sentiment --mode few-shot --option correction=...`; the
    record in metrics.json says which correction the member got (24 shot texts: `texts` by default)."""
    import json

    write_jsonl(tmp_path / "train.jsonl", [{"text": t, "label": "positive"} for t in POSITIVE + [f"{t}, truly" for t in POSITIVE]]
                + [{"text": t, "label": "negative"} for t in NEGATIVE + [f"{t}, truly" for t in NEGATIVE]])
    write_jsonl(tmp_path / "test.jsonl", [{"text": "the best film this year", "label": "positive"},
                                          {"text": "the worst film this year", "label": "negative"}])
    for correction, kind in (("auto", "texts"), ("none", "none")):
        out = tmp_path / correction
        done = run_taskkit("run", "sentiment", "--mode", "few-shot", "--data", tmp_path, "--shots", "12",
                           "--max-length", "32", "--option", "steps=2", "--option", "cv_folds=0",
                           "--option", "zero_shot_weight=1.0", "--option", f"correction={correction}",
                           "--out", out, "-q")
        assert done.returncode == 0, done.stderr
        record = json.loads((out / "metrics.json").read_text())["training"]["extra"]["member_correction"]
        assert record["kind"] == kind and record["texts"] == (24 if kind == "texts" else 0)
    done = run_taskkit("run", "sentiment", "--mode", "few-shot", "--data", tmp_path, "--shots", "12",
                       "--option", "correction=sometimes", "--out", tmp_path / "bad", "-q")
    assert done.returncode == 2 and "correction" in done.stderr and "Traceback" not in done.stderr
