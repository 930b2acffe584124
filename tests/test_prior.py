"""The few-shot head's trust in the label names is chosen from the training examples."""

import numpy as np

from taskkit_plugins.few_shot.prior import FALLBACK, MIXES, WEIGHTS, blend, choose_mix, fit_logistic


def _data(seed: int, per_class: int = 8, classes: int = 4, dim: int = 16, noise: float = 1.5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    y = np.repeat(np.arange(classes), per_class)
    x = centres[y] + noise * rng.normal(size=(len(y), dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True), y, centres


def test_names_that_describe_the_classes_get_a_large_share():
    x, y, centres = _data(0)
    assert choose_mix(x, y, centres, seed=0) >= 0.5


def test_names_unrelated_to_the_classes_get_none():
    x, y, _ = _data(1, noise=0.3)
    unrelated = np.random.default_rng(99).normal(size=(4, 16))
    assert choose_mix(x, y, unrelated, seed=0) == MIXES[0] == 0.0


def test_a_class_with_one_example_falls_back():
    x, y, centres = _data(2)
    assert choose_mix(x[7:], y[7:], centres, seed=0) == FALLBACK  # class 0 keeps one example


def test_blend_ends_are_the_regression_and_the_scaled_cosine_classifier():
    x, y, centres = _data(3)
    coef, bias = fit_logistic(x, y, 4, seed=0)
    w, b = blend(coef, bias, x, centres, 0.0)
    assert np.allclose(w, coef) and np.allclose(b, bias)
    w, b = blend(coef, bias, x, centres, 1.0)
    cosine = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    assert np.allclose(b, 0) and np.array_equal((x @ w.T).argmax(1), (x @ cosine.T).argmax(1))


# --- both shares together: the head's and the zero-shot member's (issue 17) ---

def _folds(x, y, prior, zero, seed=0):
    from taskkit_plugins.few_shot.prior import untrained_folds

    return untrained_folds(x, y, prior, None if zero is None else {"zero": zero}, seed)


def _one_hot(y, n, sharp=0.9):
    p = np.full((len(y), n), (1 - sharp) / (n - 1))
    p[np.arange(len(y)), y] = sharp
    return p


def test_code_labels_get_no_share_anywhere():
    """Opaque codes: neither the cosine to the code's embedding nor a zero-shot classifier of the
    codes knows anything, so both shares are 0 (and the names are then left out)."""
    from taskkit_plugins.few_shot.prior import choose_shares

    for seed in range(3):
        x, y, _ = _data(seed, noise=0.6)
        codes = np.random.default_rng(100 + seed).normal(size=(4, 16))
        noise = np.random.default_rng(200 + seed).dirichlet(np.ones(4) * 5, size=len(y))
        shares = choose_shares(_folds(x, y, codes, noise), seed=0)
        assert (shares.mix, shares.weight) == (0.0, 0.0), shares.as_dict()


def test_telling_names_and_worthless_examples_give_the_names_everything():
    """Names that answer the question and examples that say nothing: the zero-shot share goes to 1."""
    from taskkit_plugins.few_shot.prior import choose_shares

    rng = np.random.default_rng(5)
    y = np.repeat(np.arange(4), 8)
    x = rng.normal(size=(32, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    shares = choose_shares(_folds(x, y, rng.normal(size=(4, 16)), _one_hot(y, 4)), seed=0)
    assert shares.weight == 1.0 and 1.0 in WEIGHTS
    assert shares.chosen_by.startswith("cross-validation") and "0.0/1.0" in shares.loss


def test_both_worth_something_share_between():
    """A useful but imperfect zero-shot classifier and informative examples: a share strictly inside."""
    from taskkit_plugins.few_shot.prior import choose_shares

    x, y, centres = _data(7, noise=2.0)
    rng = np.random.default_rng(8)
    wrong = np.where(rng.random(len(y)) < 0.3, (y + 1) % 4, y)  # right 70% of the time
    shares = choose_shares(_folds(x, y, rng.normal(size=(4, 16)), _one_hot(wrong, 4, 0.7)), seed=0)
    assert 0.0 < shares.weight < 1.0


def test_share_zero_leaves_the_descriptions_out_of_the_head():
    from taskkit_plugins.few_shot.prior import head_weights

    x, y, centres = _data(4)
    w, b = head_weights(x, y, centres, 0.0, seed=0)
    coef, bias = fit_logistic(x, y, 4, seed=0)
    assert np.allclose(w, coef) and np.allclose(b, bias)
    w, _ = head_weights(x, y, centres, 0.5, seed=0)
    assert not np.allclose(w, coef)


def test_contrastive_length_follows_setfit_iterations_and_is_capped():
    """setfit at num_iterations=20 makes 2 x 20 pairs an example (80 texts encoded): 16 shots in
    batches of 32 texts are 40 steps; 616 shots would be 1,540, capped."""
    from taskkit_plugins.few_shot.mode import contrastive_steps

    assert contrastive_steps(16, 32, 20, 100) == 40
    assert contrastive_steps(32, 32, 20, 100) == 80
    assert contrastive_steps(616, 32, 20, 100) == 100
    assert contrastive_steps(2, 32, 1, 100) == 1


def test_the_shots_choose_which_zero_shot_backend_to_trust():
    """A two-backend member: where the NLI backend knows the labels and the cosines do not, the
    shots give the NLI share 1 (and 0 the other way round); the choice is in metrics' shares."""
    from taskkit_plugins.few_shot.prior import choose_shares, untrained_folds

    rng = np.random.default_rng(7)
    y = np.repeat(np.arange(4), 8)
    x = rng.normal(size=(32, 16))  # examples that say nothing
    telling, noise = _one_hot(y, 4, 0.8), rng.dirichlet(np.ones(4) * 5, size=len(y))
    prior = rng.normal(size=(4, 16))
    for nli, embedding, share in ((telling, noise, 1.0), (noise, telling, 0.0)):
        folds = untrained_folds(x, y, prior, {"nli": nli, "embedding": embedding}, seed=0)
        shares = choose_shares(folds, seed=0)
        assert shares.weight > 0 and shares.nli == share, shares.as_dict()
        assert shares.as_dict()["member_nli_share"] == share


def test_the_member_mix_stays_at_the_default_when_the_shots_cannot_tell():
    """Two backends about as good (each right 75% of the time, wrong on different examples): a few
    dozen held-out examples cannot tell them apart beyond noise, so the member keeps zero-shot's
    default mix instead of following the fold's luck."""
    from taskkit_plugins.few_shot.prior import DEFAULT_NLI_SHARE, choose_shares, untrained_folds

    rng = np.random.default_rng(11)
    y = np.repeat(np.arange(4), 8)
    x = rng.normal(size=(32, 16))
    moved = 0
    for seed in range(5):
        parts = {}
        for name in ("nli", "embedding"):
            guess = np.where(np.random.default_rng(seed * 10 + len(name)).random(len(y)) < 0.25, (y + 1) % 4, y)
            parts[name] = _one_hot(guess, 4, 0.7)
        shares = choose_shares(untrained_folds(x, y, rng.normal(size=(4, 16)), parts, seed=0), seed=0)
        assert shares.weight > 0, shares.as_dict()  # the names are worth something here
        moved += shares.nli != DEFAULT_NLI_SHARE
    assert moved == 0


def test_the_member_share_goes_above_the_plain_average_only_where_the_shots_clearly_say_so():
    """Examples and a zero-shot member both worth something: a share above 0.5 with the lowest
    held-out loss by a little is not taken; the average stays 0.5 unless that share is lower beyond
    the noise of the held-out examples (2 standard errors), as for the names member of full and peft.
    (Codes still get 0: ``test_code_labels_get_no_share_anywhere``.)"""
    from taskkit_plugins.few_shot.prior import DEFAULT_WEIGHT, choose_shares

    kept = 0
    for seed in range(5):
        x, y, _ = _data(20 + seed, noise=2.0)
        rng = np.random.default_rng(30 + seed)
        guess = np.where(rng.random(len(y)) < 0.3, (y + 1) % 4, y)  # right 70% of the time
        shares = choose_shares(_folds(x, y, rng.normal(size=(4, 16)), _one_hot(guess, 4, 0.6)), seed=0)
        lowest = min((float(v), k) for k, v in shares.loss.items())[1]
        assert shares.weight > 0, shares.as_dict()
        if shares.weight == DEFAULT_WEIGHT:
            kept += 1
        else:  # moved: then it is the lowest-loss share, not a near tie
            assert lowest.split("/")[1] == str(shares.weight), shares.as_dict()
    assert kept >= 3  # a few dozen held-out examples rarely settle the share beyond their noise
