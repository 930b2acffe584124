"""Zero-shot speed, side by side in one run on the same models and texts.

NLI: transformers' ``ZeroShotClassificationPipeline`` (at its defaults) against taskkit's NLI
scorer, on taskkit's shipped NLI model; AG News (4 labels) and Banking77 (77 labels). The
shipped model mean-pools its encoder, which no ``...ForSequenceClassification`` class does, so the
pipeline gets it through a small ``PreTrainedModel`` wrapper: the same weights, the same logits.
Embedding: sentence-transformers' own ``encode`` (defaults) against taskkit's embedding scorer on
the packaged all-MiniLM-L6-v2.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from _common import DATASETS, ROOT, read_jsonl, write_section  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ag-news", type=int, default=500, help="AG News test texts (x 4 labels)")
    parser.add_argument("--banking77", type=int, default=200, help="Banking77 test texts (x 77 labels)")
    parser.add_argument("--encode", type=int, default=3000, help="texts for the embedding comparison")
    args = parser.parse_args()

    import numpy as np
    import yaml
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
        zsc(texts[:2], candidate_labels=candidate, hypothesis_template=hypothesis)  # warm-up, both sides get one
        started = time.perf_counter()
        out = zsc(texts, candidate_labels=candidate, hypothesis_template=hypothesis)
        ref_s = time.perf_counter() - started
        ref_top = [candidate.index(o["labels"][0]) for o in out]
        pairs = len(texts) * len(labels)
        row = f"| {name} | {len(texts)} x {len(labels)} = {pairs} | {pairs / ref_s:.0f} |"
        for precision in ("fp32", "bf16"):
            scorer.precision = precision
            scorer.probabilities(texts[:2], clf.hypotheses, False)
            started = time.perf_counter()
            top = scorer.probabilities(texts, clf.hypotheses, False).argmax(1)
            seconds = time.perf_counter() - started
            same = float(np.mean(top == np.array(ref_top)))
            row += f" {pairs / seconds:.0f} ({ref_s / seconds:.2f}x, {same * 100:.2f}% same top-1) |"
        lines.append(row)
        print(row, flush=True)

    texts = [r["text"] for r in read_jsonl(DATASETS / "topic/ag_news/test.jsonl.gz")][: args.encode]
    st = SentenceTransformer(resolve("minilm"), device="cpu")
    st.encode(texts[:8])
    started = time.perf_counter()
    ref = st.encode(texts, normalize_embeddings=True)
    st_s = time.perf_counter() - started
    enc = taskkit.zero_shot("a,b", task="topic", backend="embedding").encoder()
    emb_rows = []
    for precision in ("fp32", "bf16"):
        enc.precision = precision
        enc.encode(texts[:8])
        started = time.perf_counter()
        mine = enc.encode(texts)
        seconds = time.perf_counter() - started
        cos = float(np.min(np.sum(mine * ref, axis=1) / np.linalg.norm(mine, axis=1) / np.linalg.norm(ref, axis=1)))
        emb_rows.append(f"{len(texts) / seconds:.0f} texts/s ({st_s / seconds:.2f}x, lowest cosine to reference {cos:.4f})")
    print(emb_rows, flush=True)

    write_section("Zero-shot speed (against ZeroShotClassificationPipeline and sentence-transformers encode)", f"""
Same shipped NLI model, same texts and hypotheses on both sides; pairs per second (speed ratio, share of texts whose
top label matches the pipeline's). The pipeline runs at its defaults (fp32, one pair per forward pass, as
`pipeline("zero-shot-classification")` does unless told a batch size); taskkit streams all pairs length-sorted with
dynamic padding in batches of at most 128 pairs and 3,072 padded tokens. taskkit bf16 runs a bf16 copy of the weights
and scores again in fp32 the labels within 0.25 of a text's best entailment logit, so its decisions are fp32's.
Both sides truncate at the tokenizer's 512 tokens. 1 torch thread.

| data | pairs | pipeline pairs/s | taskkit fp32 pairs/s | taskkit bf16 pairs/s |
|---|---|---|---|---|
{chr(10).join(lines)}

Embedding backend on {len(texts)} AG News test texts: sentence-transformers `encode` (defaults: batch 32, fp32)
{len(texts) / st_s:.0f} texts/s; taskkit fp32 {emb_rows[0]}; taskkit bf16 {emb_rows[1]}.
Targets: NLI >= 4x the pipeline with >= 99.5% identical top-1; embedding >= 2x `encode`.
""")


if __name__ == "__main__":
    main()
