"""Zero-shot speed, side by side in one run on the same models and texts.

NLI: transformers' ``ZeroShotClassificationPipeline`` (at its defaults, and at taskkit's batch size
in fp32 and under bf16 autocast) against taskkit's NLI scorer, on taskkit's shipped NLI model; AG News (4 labels) and Banking77 (77 labels). The
shipped model mean-pools its encoder, which no ``...ForSequenceClassification`` class does, so the
pipeline gets it through a small ``PreTrainedModel`` wrapper: the same weights, the same logits.
Embedding: sentence-transformers' own ``encode`` (defaults, and at taskkit's batch size in fp32 and
under bf16 autocast) against taskkit's embedding scorer on the packaged all-MiniLM-L6-v2. Every
figure at the machine's default torch threads.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import DATASETS, ROOT, precision_context, read_jsonl, write_section

BATCH = 128  # taskkit's batch of pairs (and of texts for the embedding scorer)


def pipeline_model(scorer):
    """The shipped TaskModel behind a transformers model interface, for the pipeline."""
    import copy

    from transformers import PreTrainedModel
    from transformers.modeling_outputs import SequenceClassifierOutput

    inner = scorer.model
    config = copy.deepcopy(inner.body.config)
    names = scorer.names
    config.id2label = dict(enumerate(names))
    config.label2id = {n: i for i, n in enumerate(names)}

    class Wrapped(PreTrainedModel):
        config_class = type(config)
        base_model_prefix = "inner"
        _supports_sdpa = True  # the wrapped body already chose its attention

        def __init__(self) -> None:
            super().__init__(config)
            self.inner = inner

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **_):
            batch = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                batch["token_type_ids"] = token_type_ids
            return SequenceClassifierOutput(logits=self.inner(**batch))

    return Wrapped().eval()


def timed(call, *args, **kwargs):
    started = time.perf_counter()
    out = call(*args, **kwargs)
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ag-news", type=int, default=500, help="AG News test texts (x 4 labels)")
    parser.add_argument("--banking77", type=int, default=200, help="Banking77 test texts (x 77 labels)")
    parser.add_argument("--encode", type=int, default=3000, help="texts for the embedding comparison")
    parser.add_argument("--note", default="nothing else running on the machine",
                        help="what else ran on the machine, stated in RESULTS.md")
    args = parser.parse_args()

    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import pipeline

    import taskkit
    from taskkit.models import resolve

    lines = []
    for name, task, folder, n in (("AG News", "topic", "topic/ag_news", args.ag_news),
                                  ("Banking77", "intent", "intent/banking77", args.banking77)):
        texts = [r["text"] for r in read_jsonl(DATASETS / folder / "test.jsonl.gz")][:n]
        key = folder.split("/")[1]
        clf = taskkit.zero_shot(ROOT / "benchmarks" / "zero_shot_labels" / f"{key}.yaml", task=task, backend="nli")
        scorer = clf.scorer()
        scorer.max_length = scorer.tokenizer.model_max_length  # the pipeline truncates there, not at 128
        labels = list(clf.labels.names)
        hypothesis = clf.settings["template"]
        candidate = [d or l.replace("_", " ") for l, d in clf.descriptions.items()]
        # the pipeline fills its template with the candidate labels; give it the same hypotheses
        zsc = pipeline("zero-shot-classification", model=pipeline_model(scorer), tokenizer=scorer.tokenizer, device=-1)
        pairs = len(texts) * len(labels)
        runs = []  # (system, batch, precision, seconds, top-1 per text)
        for batch, precision in ((None, "fp32"), (BATCH, "fp32"), (BATCH, "bf16")):
            kwargs = {"candidate_labels": candidate, "hypothesis_template": hypothesis}
            if batch:
                kwargs["batch_size"] = batch
            with torch.inference_mode(), precision_context(precision):
                zsc(texts[:2], **kwargs)  # warm-up, every row gets one
                seconds, out = timed(zsc, texts, **kwargs)
            runs.append(("pipeline", batch, precision, seconds, np.array([candidate.index(o["labels"][0]) for o in out])))
        for precision in ("fp32", "bf16"):
            scorer.precision = precision
            scorer.probabilities(texts[:2], clf.hypotheses, False)
            seconds, proba = timed(scorer.probabilities, texts, clf.hypotheses, False)
            runs.append(("taskkit", BATCH, precision, seconds, proba.argmax(1)))
        lines += rows_of(f"{name}, {len(texts)} x {len(labels)} = {pairs} pairs", runs, pairs, "pairs")
        print("\n".join(lines[-len(runs):]), flush=True)

    texts = [r["text"] for r in read_jsonl(DATASETS / "topic/ag_news/test.jsonl.gz")][: args.encode]
    st = SentenceTransformer(resolve("minilm"), device="cpu")
    emb_runs, ref = [], None
    for batch, precision in ((None, "fp32"), (BATCH, "fp32"), (BATCH, "bf16")):
        kwargs = {"normalize_embeddings": True, **({"batch_size": batch} if batch else {})}
        with torch.inference_mode(), precision_context(precision):
            st.encode(texts[:8], **kwargs)
            seconds, out = timed(st.encode, texts, **kwargs)
        ref = out if ref is None else ref
        emb_runs.append(("sentence-transformers `encode`", batch, precision, seconds, out))
    enc = taskkit.zero_shot("a,b", task="topic", backend="embedding").encoder()
    for precision in ("fp32", "bf16"):
        enc.precision = precision
        enc.encode(texts[:8])
        seconds, mine = timed(enc.encode, texts)
        emb_runs.append(("taskkit", BATCH, precision, seconds, mine))
    lowest = {i: float(np.min(np.sum(r[4] * ref, axis=1) / np.linalg.norm(r[4], axis=1) / np.linalg.norm(ref, axis=1)))
              for i, r in enumerate(emb_runs)}
    emb_lines = rows_of(f"AG News, {len(texts)} texts", emb_runs, len(texts), "texts", lowest)
    print("\n".join(emb_lines), flush=True)

    write_section("Zero-shot speed (against ZeroShotClassificationPipeline and sentence-transformers encode)", f"""
Command conditions: {torch.get_num_threads()} torch threads (the default); {args.note}.

NLI: the same shipped NLI model, texts and hypotheses on every row. The pipeline runs at its defaults (fp32, one pair
per forward pass, as `pipeline("zero-shot-classification")` does unless told a batch size), then at taskkit's batch
of {BATCH} pairs in fp32 and under `torch.autocast` bf16. taskkit streams all pairs length-sorted with dynamic padding in
batches of at most {BATCH} pairs and 3,072 padded tokens; its bf16 runs a bf16 copy of the weights and scores again
in fp32 the labels within 0.25 of a text's best entailment logit, so its decisions are fp32's. Both sides truncate
at the tokenizer's 512 tokens. "Agreement": share of texts whose top label matches the pipeline's at its defaults.

| data | system | batch | precision | pairs/s | vs the reference's defaults | vs the reference at the same batch and precision | agreement |
|---|---|---|---|---|---|---|---|
{chr(10).join(lines)}

Embedding backend: sentence-transformers `encode` (defaults: batch 32, fp32; then batch {BATCH} in fp32 and under
bf16 autocast) against taskkit's encoder on the packaged all-MiniLM-L6-v2; "agreement" here is the lowest cosine
between a text's embedding and `encode`'s at its defaults.

| data | system | batch | precision | texts/s | vs the reference's defaults | vs the reference at the same batch and precision | agreement |
|---|---|---|---|---|---|---|---|
{chr(10).join(emb_lines)}

Targets: NLI >= 4x the pipeline's defaults with >= 99.5% identical top-1; embedding >= 2x `encode`'s defaults. The
"same batch and precision" column is what taskkit's scoring itself adds (length-sorted batches, token budget,
no per-pair pipeline overhead), precision and batching aside.
""")


def rows_of(data: str, runs: list, count: int, unit: str, lowest: dict[int, float] | None = None) -> list[str]:
    """Table rows: each run's rate, against the reference's defaults (row 0) and against the
    reference at the same batch and precision; agreement with row 0 (top-1, or lowest cosine)."""
    import numpy as np

    reference = runs[0]
    same = {(b, p): s for system, b, p, s, _ in runs if system == reference[0]}
    rows = []
    for i, (system, batch, precision, seconds, out) in enumerate(runs):
        against = same.get((batch, precision)) if system != reference[0] else None
        agreement = f"{lowest[i]:.4f}" if lowest is not None else f"{np.mean(out == reference[4]) * 100:.2f}%"
        rows.append(f"| {data} | {system} | {batch or 'default'} | {precision} | {count / seconds:.0f} | "
                    f"{reference[3] / seconds:.2f}x | {f'**{against / seconds:.2f}x**' if against else '-'} | "
                    f"{agreement} |")
    return rows


if __name__ == "__main__":
    main()
