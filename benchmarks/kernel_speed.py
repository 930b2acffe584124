"""taskkit's kernel against transformers' Trainer and text-classification pipeline, side by side.

Training: the same packaged MiniLM, SST-2 train, epochs, batch size and learning rate; each
otherwise at its defaults (Trainer: fp32, no length grouping; taskkit: auto precision, length-
grouped batches). Reported: training examples per second and test accuracy.
Inference: the Trainer's fine-tuned model, scored on the SST-2 test split by
``pipeline("text-classification")`` and by taskkit's inference kernel (bf16 and fp32).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# one torch thread: on 2 shared cores a 2-thread torch waits on the other jobs (several times slower)
os.environ.setdefault("OMP_NUM_THREADS", "1")

from _common import DATASETS, read_jsonl, write_section  # noqa: E402


def train_with_trainer(model_path: str, train: list[dict], labels: list[str], args: argparse.Namespace, out: str):
    import numpy as np
    from datasets import Dataset
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    ds = Dataset.from_dict({"text": [e["text"] for e in train], "label": [labels.index(e["label"]) for e in train]})
    ds = ds.map(lambda b: tokenizer(b["text"], truncation=True, max_length=args.max_length), batched=True,
                remove_columns=["text"])
    targs = TrainingArguments(output_dir=out, num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
                              learning_rate=args.lr, seed=args.seed, report_to=[], save_strategy="no",
                              logging_strategy="no", disable_tqdm=True)
    trainer = Trainer(model=model, args=targs, train_dataset=ds, data_collator=DataCollatorWithPadding(tokenizer),
                      processing_class=tokenizer)
    started, cpu = time.perf_counter(), time.process_time()
    trainer.train()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    model.save_pretrained(out + "/model")
    tokenizer.save_pretrained(out + "/model")
    return out + "/model", len(train) * args.epochs / seconds, seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    import taskkit
    from taskkit.kernel.device import resolve_precision
    from taskkit.kernel.infer import predict_logits, stack
    from taskkit.models import resolve

    data = DATASETS / "sentiment" / "sst2"
    train = read_jsonl(data / "train.jsonl.gz")
    test = read_jsonl(data / "test.jsonl.gz")
    labels = sorted({e["label"] for e in train})
    model_path = resolve("minilm")
    gold = [e["label"] for e in test]
    texts = [e["text"] for e in test]

    # --- training ---------------------------------------------------------------------
    cpu = time.process_time()
    result = taskkit.run("sentiment", "full", data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         max_length=args.max_length, seed=args.seed, patience=0, progress=False)
    # CPU seconds of the whole run (training, plus dev and test evaluation): an upper bound for training
    ours_cpu = time.process_time() - cpu
    ours_eps = result.predictor.training.examples_per_second
    ours_acc = result.metrics["accuracy"]
    ours_seconds = result.predictor.training.train_seconds
    del result

    with tempfile.TemporaryDirectory() as tmp:
        hf_dir, ref_eps, ref_seconds, ref_cpu = train_with_trainer(model_path, train, labels, args, tmp)
        tokenizer = AutoTokenizer.from_pretrained(hf_dir)
        hf_model = AutoModelForSequenceClassification.from_pretrained(hf_dir).eval()

        # --- inference: the pipeline at its defaults ------------------------------------
        clf = pipeline("text-classification", model=hf_model, tokenizer=tokenizer, device=-1)
        clf(texts[:8])  # warm-up, both sides get one
        started = time.perf_counter()
        ref_pred = [r["label"] for r in clf(texts)]
        ref_infer = time.perf_counter() - started
        ref_acc = float(np.mean([p == g for p, g in zip(ref_pred, gold)]))

        # --- inference: taskkit's kernel on the same model ------------------------------
        features = [dict(f) for f in (tokenizer(t, truncation=True, max_length=512) for t in texts)]
        features = [{k: f[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in f} for f in features]
        runs = {}
        for precision in ("bf16", "fp32"):
            predict_logits(hf_model, features[:8], tokenizer.pad_token_id, precision=precision, logits_of=lambda o: o.logits)
            started = time.perf_counter()
            logits = stack(predict_logits(hf_model, features, tokenizer.pad_token_id, batch_size=128,
                                          precision=precision, logits_of=lambda o: o.logits))
            seconds = time.perf_counter() - started
            pred = [hf_model.config.id2label[int(i)] for i in logits.argmax(-1)]
            runs[precision] = (seconds, float(np.mean([p == r for p, r in zip(pred, ref_pred)])),
                               float(np.mean([p == g for p, g in zip(pred, gold)])))

    train_ratio = ours_eps / ref_eps
    rows = "\n".join(
        f"| taskkit kernel, {p} | {s:.2f} s | {len(texts) / s:.0f} | {ref_infer / s:.2f}x | {agree * 100:.2f}% | {acc:.4f} |"
        for p, (s, agree, acc) in runs.items())
    write_section("Kernel speed against transformers (SST-2, packaged MiniLM)", f"""
Training: {len(train)} SST-2 sentences, {args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, max length {args.max_length}, seed {args.seed}, torch {torch.__version__}, {torch.get_num_threads()} threads.

| trainer | precision | train time (wall) | examples/s | speed ratio | CPU seconds | SST-2 test accuracy |
|---|---|---|---|---|---|---|
| transformers `Trainer` (defaults) | fp32 | {ref_seconds:.0f} s | {ref_eps:.1f} | 1.00x | {ref_cpu:.0f} (training) | {ref_acc:.4f} |
| taskkit kernel (defaults) | {resolve_precision("auto")} | {ours_seconds:.0f} s | {ours_eps:.1f} | **{train_ratio:.2f}x** | {ours_cpu:.0f} (whole run) | {ours_acc:.4f} |

The machine is shared and noisy: CPU seconds (the process's own, all threads) are the check that a
wall-time ratio is not an artefact of load; taskkit's count includes its dev and test evaluation.

Accuracy difference (taskkit - Trainer): {(ours_acc - ref_acc) * 100:+.2f} points. Targets: >= 1.3x, no more than 0.5 points lower.

Inference on the {len(texts)} SST-2 test sentences with the Trainer's fine-tuned model:

| inference | time | texts/s | speed ratio | same label as pipeline | accuracy |
|---|---|---|---|---|---|
| `pipeline("text-classification")` (defaults) | {ref_infer:.2f} s | {len(texts) / ref_infer:.0f} | 1.00x | 100% | {ref_acc:.4f} |
{rows}

Targets: bf16 >= 3x with >= 99.5% identical labels; fp32 >= 1.7x with identical labels.
""")


if __name__ == "__main__":
    main()
