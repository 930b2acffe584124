"""Every ``taskkit`` command README.md shows runs, through the real console script, on tiny data.

The commands are read from the README itself: those in its ```bash blocks (including the
``taskkit`` part of an ``a && b`` chain) and those quoted inline. Each must have an entry in
``BLOCK_COMMANDS`` / ``INLINE_COMMANDS`` saying how it is run here: the README's own arguments,
with ``../shared/datasets/...`` replaced by tiny local data (``TINY_DATASETS``) and, where it
trains, ``--model TINY --epochs 1`` added. A command added to the README without an entry fails
``test_every_readme_command_has_a_case``; an entry whose command left the README fails it too.
The commands run in one scratch folder, in the README's order where one uses another's output
(``runs/sst2``), each in a new process.
"""

from __future__ import annotations

import gzip
import json
import re
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    DEMO,
    REPO,
    TESTS,
    read_jsonl,
    subprocess_env,
    taskkit_command,
    write_jsonl,
)

README = REPO / "README.md"
TINY = "{tiny}"  # replaced by the tiny random BERT's folder
TRAIN = ("--model", TINY, "--epochs", "1", "--max-length", "32", "-q")


# --- the README's commands ---------------------------------------------------------------------
def block_commands(text: str) -> list[str]:
    """``taskkit ...`` commands in the ```bash blocks: env assignments and comments dropped."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE):
        for line in block.splitlines():
            for part in line.split("&&"):
                part = re.sub(r"^\s*(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*", "", part)
                part = re.sub(r"\s+#[^'\"]*$", "", part).strip()
                if part.startswith("taskkit "):
                    commands.append(part)
    return commands


def inline_commands(text: str) -> list[str]:
    """``taskkit ...`` commands quoted inline in the prose (outside code blocks)."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    return [c for c in re.findall(r"`(taskkit [^`]+)`", prose)]


# --- tiny stand-ins for the shared data sets ----------------------------------------------------
INTENT_TEMPLATES = {
    "balance": ["what is my {} balance", "how much is in my {} account", "show the balance of my {} account",
                "tell me my {} balance", "check my {} balance please"],
    "transfer": ["send money from my {} account", "transfer cash out of {}", "move funds from {} to savings",
                 "wire money from my {} account", "make a transfer from {}"],
    "oos": ["what is the weather like in {}", "tell me a joke about {}", "who won the {} game",
            "how tall is the {} tower", "play a song about {}"],
}


def _intent(folder: Path) -> Path:
    """CLINC150's shape: enough examples per intent for ``--shots 8``, ``oos`` among them."""
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "dev": [], "test": []}
    for label, templates in INTENT_TEMPLATES.items():
        texts = [t.format(word) for word in ("checking", "joint", "business") for t in templates]
        splits["train"] += [{"text": t, "label": label} for t in texts[:10]]
        splits["dev"] += [{"text": t, "label": label} for t in texts[10:12]]
        splits["test"] += [{"text": t, "label": label} for t in texts[12:]]
    for name, rows in splits.items():
        write_jsonl(folder / f"{name}.jsonl", rows)
    return folder


AG_NEWS = {
    "World": ["The prime minister met foreign leaders.", "Diplomats signed a peace treaty."],
    "Sports": ["The striker scored twice in the final.", "The goalkeeper saved a penalty."],
    "Business": ["Shares fell after the bank cut its forecast.", "The company reported record earnings."],
    "Sci/Tech": ["A new telescope photographed a distant galaxy.", "The software update fixes a security flaw."],
}


def _ag_news(folder: Path) -> Path:
    write_jsonl(folder / "test.jsonl", [{"text": t, "label": label} for label, texts in AG_NEWS.items() for t in texts])
    return folder


NER_SENTENCES = [
    (["John", "Smith", "lives", "in", "Paris", "."], ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]),
    (["Mary", "works", "for", "Acme", "Corp", "in", "Berlin"], ["B-PER", "O", "O", "B-ORG", "I-ORG", "O", "B-LOC"]),
    (["Acme", "Corp", "hired", "Anna", "."], ["B-ORG", "I-ORG", "O", "B-PER", "O"]),
]


def _wikiann(folder: Path) -> Path:
    """WikiANN's shape: CoNLL train / test with PER, ORG and LOC, 6+ mentions of each for ``--shots 5``."""
    def conll(sentences: list[tuple[list[str], list[str]]]) -> str:
        return "\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(*s)) for s in sentences) + "\n"

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.conll").write_text(conll(NER_SENTENCES * 6), encoding="utf-8")
    (folder / "test.conll").write_text(conll(NER_SENTENCES), encoding="utf-8")
    return folder


def _semeval(folder: Path) -> Path:
    """SemEval's shape: directed labels and Other, 8+ of each for ``--shots 8``."""
    def row(text: str, head: str, tail: str, label: str) -> dict[str, Any]:
        h, t = text.index(head), text.index(tail)
        return {"text": text, "head": {"start": h, "end": h + len(head)}, "tail": {"start": t, "end": t + len(tail)},
                "label": label}

    rows = [row("The fire was caused by a spark.", "spark", "fire", "Cause-Effect(e1,e2)"),
            row("The spark caused the fire.", "fire", "spark", "Cause-Effect(e2,e1)"),
            row("The man saw a dog yesterday.", "man", "dog", "Other")]
    write_jsonl(folder / "train.jsonl", rows * 9)
    write_jsonl(folder / "test.jsonl", rows)
    return folder


#: the README's data set path -> a writer of a tiny stand-in (returns the folder to pass)
TINY_DATASETS: dict[str, Callable[[Path], Path]] = {
    "../shared/datasets/sentiment/sst2": lambda folder: DEMO,  # the packaged demo set, SST-2's shape
    "../shared/datasets/ner/wikiann_en": _wikiann,
    "../shared/datasets/relation/semeval2010_task8": _semeval,
    "../shared/datasets/intent/clinc150": _intent,
    "../shared/datasets/topic/ag_news": _ag_news,
}


# --- how each command runs and what it must print -----------------------------------------------
@dataclass
class Case:
    check: Callable[[subprocess.CompletedProcess, Path], None]
    extra: tuple[str, ...] = ()  # arguments added to the README's
    after: tuple[str, ...] = ()  # README commands whose output this one reads (run first)
    setup: tuple[str, ...] = ()  # a taskkit command (not the README's) whose output this one reads
    cwd: str = "."  # scratch sub-folder it runs in
    argv: tuple[str, ...] = ()  # the arguments, where the README's are placeholders
    server: bool = False  # runs until stopped: started, asked, then sent SIGTERM


def _run_report(task: str, mode: str, out: str, shots: int | None = None) -> Callable[..., None]:
    def check(done: subprocess.CompletedProcess, cwd: Path) -> None:
        assert f"{task} / {mode} on test" in done.stdout, done.stdout
        metrics = json.loads((cwd / out / "metrics.json").read_text(encoding="utf-8"))
        assert (metrics["task"], metrics["mode"]) == (task, mode)
        meta = json.loads((cwd / out / "model" / "taskkit.json").read_text(encoding="utf-8"))
        assert (meta["task"], meta["mode"]) == (task, mode)
        saved = read_jsonl(cwd / out / "predictions.jsonl")
        assert saved and len(saved) == metrics["examples"]
        if shots is not None:  # N per class, and which lines they were
            classes = len({r["gold"] for r in saved})
            assert len(metrics["train_indices"]) == shots * classes
            assert metrics["training"]["train_examples"] == shots * classes
    return check


def _few_shot_structured(task: str, out: str, shots: int) -> Callable[..., None]:
    """A few-shot NER / relation run: K mentions of each type (K of each label), saved as torch.v1."""
    def check(done: subprocess.CompletedProcess, cwd: Path) -> None:
        assert f"{task} / few-shot on test" in done.stdout, done.stdout
        metrics = json.loads((cwd / out / "metrics.json").read_text(encoding="utf-8"))
        meta = json.loads((cwd / out / "model" / "taskkit.json").read_text(encoding="utf-8"))
        assert (meta["task"], meta["mode"], meta["format"]) == (task, "few-shot", "torch.v1")
        if task == "ner":  # every type has at least K mentions in the sampled sentences
            kinds = [t[2:] for i in metrics["train_indices"] for t in NER_SENTENCES[i % 3][1] if t[:2] == "B-"]
            assert all(kinds.count(k) >= shots for k in ("PER", "ORG", "LOC")), kinds
        else:
            assert len(metrics["train_indices"]) == 3 * shots
    return check


def _predictions(texts: list[str], labels: set[str], expected: list[str] | None = None) -> Callable[..., None]:
    def check(done: subprocess.CompletedProcess, cwd: Path) -> None:
        records = [json.loads(line) for line in done.stdout.splitlines()]
        assert [r["text"] for r in records] == texts
        for record in records:
            assert record["predicted"] in labels and set(record["probabilities"]) == labels
            assert abs(sum(record["probabilities"].values()) - 1) < 1e-4
        if expected is not None:
            assert [r["predicted"] for r in records] == expected
    return check


def _scored(output: str) -> Callable[..., None]:
    """``check`` for ``taskkit predict --input reviews.jsonl.gz --output OUTPUT``: every review, in order, once."""
    def check(done: subprocess.CompletedProcess, cwd: Path) -> None:
        records = read_jsonl(cwd / output)
        assert [(r["id"], r["text"]) for r in records] == list(enumerate(REVIEWS))
        assert all(r["predicted"] in SENTIMENT and set(r["probabilities"]) == SENTIMENT for r in records)
    return check


def _listing(first_column: set[str]) -> Callable[..., None]:
    def check(done: subprocess.CompletedProcess, cwd: Path) -> None:
        assert first_column <= {line.split("\t")[0] for line in done.stdout.splitlines()}, done.stdout
    return check


TASKS = {"sentiment", "topic", "intent", "ner", "relation", "nli"}
MODES = {"full", "peft", "few-shot", "zero-shot", "distill"}
SENTIMENT = {"positive", "negative"}
AG_LABELS = set(AG_NEWS)
REVIEWS = ["A warm, funny and moving story.", "Dull, slow and far too long.", "I would watch it again."]
LABELS_YAML = ("World: world news, politics, diplomacy and international affairs\n"
               "Sports: sports news, games, teams and players\n"
               "Business: business news, companies, markets and the economy\n"
               "Sci/Tech: science and technology news\n")

SST2_RUN = "taskkit run sentiment --mode full --data ../shared/datasets/sentiment/sst2 --out runs/sst2"
AG_ZS_RUN = "taskkit run topic --mode zero-shot --data ../shared/datasets/topic/ag_news --labels labels.yaml --out runs/ag-zs"

ONNX_EXPORT = "taskkit export runs/sst2 out/sst2-onnx --format onnx --quantize int8"
WIKIANN_RUN = "taskkit run ner --mode few-shot --shots 5 --data ../shared/datasets/ner/wikiann_en --out runs/wikiann-5"
NER_EXPORT = "taskkit export runs/wikiann-5 out/wikiann-5-onnx --format onnx"
ZS_EXPORT = "taskkit export runs/ag-zs out/ag-zs-onnx --format onnx"
STREAM_PREDICT = "taskkit predict runs/sst2 --input reviews.jsonl.gz --output scored.jsonl"
DISTILL_RUN = ("taskkit run topic --mode distill --option teacher=runs/ag-zs --option unlabelled=news.txt "
               "--data ../shared/datasets/topic/ag_news --out runs/ag-student")
NEWS = [t for texts in AG_NEWS.values() for t in texts] + ["Rain is expected across the north on Sunday.",
                                                          "The central bank held interest rates steady."]


def _options(done: subprocess.CompletedProcess, cwd: Path) -> None:
    assert "mode peft --option KEY=VALUE" in done.stdout and re.search(r"^\s+method\b", done.stdout, re.MULTILINE)


def _exported(done: subprocess.CompletedProcess, cwd: Path) -> None:
    meta = json.loads((cwd / "out" / "sst2-onnx" / "taskkit.json").read_text(encoding="utf-8"))
    assert meta["task"] == "sentiment" and (cwd / "out" / "sst2-onnx" / "model.onnx").is_file()


def _exported_ner(done: subprocess.CompletedProcess, cwd: Path) -> None:
    meta = json.loads((cwd / "out" / "wikiann-5-onnx" / "taskkit.json").read_text(encoding="utf-8"))
    assert (meta["task"], meta["format"], meta["settings"]["exported_from"]) == ("ner", "onnx.v1", "torch.v1")


def _exported_zero_shot(done: subprocess.CompletedProcess, cwd: Path) -> None:
    out = cwd / "out" / "ag-zs-onnx"
    meta = json.loads((out / "taskkit.json").read_text(encoding="utf-8"))
    assert (meta["task"], meta["format"], meta["settings"]["exported_from"]) == ("topic", "zero-shot-onnx.v1",
                                                                                "zero-shot.v1")
    assert (out / "nli" / "model.onnx").is_file() and (out / "encoder" / "model.onnx").is_file()
    text = "Oil prices jumped after the OPEC meeting."  # labelled as the torch folder labels it in the README
    proc = subprocess.run([*taskkit_command(), "predict", "out/ag-zs-onnx", text], cwd=cwd, capture_output=True,
                          text=True, env=subprocess_env(), timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[0])["predicted"] == "Business"


def _entities(text: str) -> Callable[..., None]:
    """``check`` for ``taskkit predict`` of a NER folder: the text's record, entities with their offsets."""
    def check(done: subprocess.CompletedProcess, cwd: Path) -> None:
        records = [json.loads(line) for line in done.stdout.splitlines()]
        assert [r["text"] for r in records] == [text] and isinstance(records[0]["entities"], list)
        for entity in records[0]["entities"]:
            assert text[entity["start"]:entity["end"]] == entity["text"] and entity["type"] in ("PER", "ORG", "LOC")
    return check


def _served(models: dict[str, set[str]]) -> Callable[..., None]:
    """``check`` for a server: each model answers a predict request as ``taskkit predict`` would."""
    def check(url: str, cwd: Path) -> None:
        for name, labels in models.items():
            request = urllib.request.Request(f"{url}/v1/models/{name}/predict", method="POST",
                                             data=json.dumps({"inputs": ["a lovely film"]}).encode(),
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=120) as answer:
                    outputs = json.loads(answer.read())["outputs"]
            except urllib.error.HTTPError as exc:
                pytest.fail(f"{name}: HTTP {exc.code} {exc.read().decode(errors='replace')}")
            assert len(outputs) == 1 and outputs[0]["text"] == "a lovely film"
            assert outputs[0]["predicted"] in labels and set(outputs[0]["probabilities"]) == labels
    return check


BLOCK_COMMANDS: dict[str, Case] = {
    # the fresh-machine demo: packaged MiniLM on the bundled demo data (one epoch, about 15 s)
    "taskkit run sentiment": Case(_run_report("sentiment", "full", "runs/sentiment-full"), ("--epochs", "1", "-q"),
                                  cwd="first-run"),
    SST2_RUN: Case(_run_report("sentiment", "full", "runs/sst2"), TRAIN),
    'taskkit predict runs/sst2 "a gripping, beautifully shot film" "two hours I will never get back"':
        Case(_predictions(["a gripping, beautifully shot film", "two hours I will never get back"], SENTIMENT),
             after=(SST2_RUN,)),
    "taskkit predict runs/sst2 --input reviews.txt": Case(_predictions(REVIEWS, SENTIMENT), after=(SST2_RUN,)),
    STREAM_PREDICT: Case(_scored("scored.jsonl"), after=(SST2_RUN,)),
    f"{STREAM_PREDICT} --resume": Case(_scored("scored.jsonl"), after=(STREAM_PREDICT,)),
    "taskkit tasks": Case(_listing(TASKS)),
    "taskkit modes": Case(_listing(MODES)),
    "taskkit plugins": Case(_listing(TASKS | MODES)),
    "taskkit run sentiment --mode few-shot --shots 8 --data ../shared/datasets/sentiment/sst2 --out runs/sst2-8":
        Case(_run_report("sentiment", "few-shot", "runs/sst2-8", shots=8), TRAIN),
    "taskkit run intent --mode few-shot --shots 8 --data ../shared/datasets/intent/clinc150":
        Case(_run_report("intent", "few-shot", "runs/intent-few-shot", shots=8), TRAIN),
    WIKIANN_RUN:
        Case(_few_shot_structured("ner", "runs/wikiann-5", 5), TRAIN),
    "taskkit run relation --mode few-shot --shots 8 --data ../shared/datasets/relation/semeval2010_task8 "
    "--out runs/semeval-8": Case(_few_shot_structured("relation", "runs/semeval-8", 8), TRAIN),
    # zero-shot: the shipped NLI model and MiniLM, as a user runs them (a few texts: seconds)
    'taskkit zero-shot "The striker scored twice in the final." --labels World,Sports,Business,Sci/Tech':
        Case(_predictions(["The striker scored twice in the final."], AG_LABELS, ["Sports"])),
    AG_ZS_RUN: Case(_run_report("topic", "zero-shot", "runs/ag-zs"), ("-q",)),
    'taskkit predict runs/ag-zs "Oil prices jumped after the OPEC meeting."':
        Case(_predictions(["Oil prices jumped after the OPEC meeting."], AG_LABELS, ["Business"]),
             after=(AG_ZS_RUN,)),
    DISTILL_RUN: Case(_run_report("topic", "distill", "runs/ag-student"), TRAIN, after=(AG_ZS_RUN,)),
    ZS_EXPORT: Case(_exported_zero_shot, after=(AG_ZS_RUN,)),
    "taskkit options sentiment --mode peft": Case(_options),
    ONNX_EXPORT: Case(_exported, after=(SST2_RUN,)),
    'taskkit predict out/sst2-onnx "a gripping, beautifully shot film"':
        Case(_predictions(["a gripping, beautifully shot film"], SENTIMENT), after=(ONNX_EXPORT,)),
    "taskkit serve runs/sst2 runs/ag-zs --port 8000": Case(_served({"sst2": SENTIMENT, "ag-zs": AG_LABELS}),
                                                           after=(SST2_RUN, AG_ZS_RUN), server=True),
    "taskkit serve out/sst2-onnx": Case(_served({"sst2-onnx": SENTIMENT}), after=(ONNX_EXPORT,), server=True),
    NER_EXPORT: Case(_exported_ner, after=(WIKIANN_RUN,)),
    'taskkit predict out/wikiann-5-onnx "Angela Merkel visited Paris."':
        Case(_entities("Angela Merkel visited Paris."), after=(NER_EXPORT,)),
}


def _merged_predicts_the_same(done: subprocess.CompletedProcess, cwd: Path) -> None:
    assert "merged model written to" in done.stdout, done.stdout
    meta = json.loads((cwd / "merged" / "taskkit.json").read_text(encoding="utf-8"))
    assert meta["task"] == "sentiment" and meta["mode"] == "peft"
    # the merged folder predicts what the adapter run predicted on the demo's test texts
    unmerged = read_jsonl(cwd / "runs" / "peft" / "predictions.jsonl")
    write_jsonl(cwd / "texts.jsonl", [{"text": r["text"]} for r in unmerged])
    proc = subprocess.run([*taskkit_command(), "predict", "merged", "--input", "texts.jsonl"], check=False, cwd=cwd,
                          capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    merged = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["predicted"] for r in merged] == [r["predicted"] for r in unmerged]
    for a, b in zip(merged, unmerged):
        assert all(abs(a["probabilities"][k] - b["probabilities"][k]) < 1e-3 for k in SENTIMENT)


def _continued(done: subprocess.CompletedProcess, cwd: Path) -> None:
    out = cwd / "runs" / "sentiment-full"
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    old_test = metrics["old_test"]  # the continued model's own test split, scored before and after
    assert Path(old_test["data"]) == DEMO and "accuracy" in old_test["before"] and "accuracy" in old_test["after"]
    meta = json.loads((out / "model" / "taskkit.json").read_text(encoding="utf-8"))
    assert meta["labels"] == ["negative", "positive", "neutral"]  # the old labels kept, the new one added


def _help(done: subprocess.CompletedProcess, cwd: Path) -> None:
    for command in ("run", "predict", "tasks", "modes", "plugins", "zero-shot", "merge"):
        assert re.search(rf"^\W*{command}\b", done.stdout, flags=re.MULTILINE), done.stdout


PEFT_RUN = ("run", "sentiment", "--mode", "peft", "--data", str(DEMO), "--out", "runs/peft", *TRAIN)
NEW_DATA = [{"text": t, "label": label} for label, texts in {
    "positive": ["What a lovely film.", "A joy to watch.", "Brilliant and warm."],
    "negative": ["A waste of time.", "Awful from start to end.", "Boring and ugly."],
    "neutral": ["The film is 90 minutes long.", "It opens on Friday.", "The cast is mostly French."],
}.items() for t in texts]

INLINE_COMMANDS: dict[str, Case | str | None] = {
    # None: a placeholder or a bare command name, whose concrete forms are the block commands above
    "taskkit run TASK": None, "taskkit predict": None, "taskkit serve": None,
    # RUN: a peft run made here from the demo data; OUT: a new folder
    "taskkit merge RUN OUT": Case(_merged_predicts_the_same, setup=PEFT_RUN, argv=("merge", "runs/peft", "merged")),
    "taskkit run sentiment --data new-data/ --from runs/sst2":
        Case(_continued, ("--epochs", "1", "--max-length", "32", "-q"),
             after=(SST2_RUN,)),
    "taskkit --help": Case(_help),
    # str: the test that runs it (it needs a pip-installed third-party plugin)
    "taskkit run spam --mode full --data my.csv":
        "tests/test_example_plugin.py::test_third_party_task_trains_and_predicts",
}


# --- running them ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("readme")
    (root / "reviews.txt").write_text("\n".join(REVIEWS) + "\n", encoding="utf-8")
    (root / "reviews.jsonl.gz").write_bytes(gzip.compress("".join(
        json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(REVIEWS)).encode("utf-8")))
    (root / "labels.yaml").write_text(LABELS_YAML, encoding="utf-8")
    (root / "news.txt").write_text("\n".join(NEWS) + "\n", encoding="utf-8")
    write_jsonl(root / "new-data" / "train.jsonl", NEW_DATA)
    return {"root": root, "tiny": tiny_model, "done": {}}


def _argv(command: str, case: Case, scratch: dict[str, Any]) -> list[str]:
    words = list(case.argv) or shlex.split(command)[1:] + list(case.extra)
    for i, word in enumerate(words):
        if word.startswith("../shared/datasets/"):
            assert word in TINY_DATASETS, f"no tiny stand-in for {word} in TINY_DATASETS"
            words[i] = str(TINY_DATASETS[word](scratch["root"] / "data" / Path(word).name))
    return [str(scratch["tiny"]) if w == TINY else w for w in words]


def execute(command: str, case: Case, scratch: dict[str, Any], run_taskkit) -> None:
    done_before: dict[str, subprocess.CompletedProcess | None] = scratch["done"]
    if command in done_before:
        return
    for needed in case.after:
        execute(needed, BLOCK_COMMANDS[needed], scratch, run_taskkit)
    cwd = scratch["root"] / case.cwd
    cwd.mkdir(exist_ok=True)
    if case.setup:
        made = run_taskkit(*[str(scratch["tiny"]) if w == TINY else w for w in case.setup], cwd=cwd, timeout=600)
        assert made.returncode == 0, made.stderr[-3000:]
    if case.server:
        _serve(command, case, scratch, cwd)
        done_before[command] = None
        return
    done = run_taskkit(*_argv(command, case, scratch), cwd=cwd, timeout=600)
    assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    case.check(done, cwd)
    done_before[command] = done


def _serve(command: str, case: Case, scratch: dict[str, Any], cwd: Path) -> None:
    """Start the server on a free port, wait until /readyz says 200, ask it, then SIGTERM it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = _argv(command, case, scratch)
    if "--port" in argv:
        argv[argv.index("--port") + 1] = str(port)
    else:
        argv += ["--port", str(port)]
    server = subprocess.Popen([*taskkit_command(), *argv], cwd=cwd, env=subprocess_env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, f"{command} exited {server.returncode}: {server.stderr.read()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            assert time.monotonic() < deadline, f"{command}: not ready after 300 s"
            time.sleep(1)
        case.check(url, cwd)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            _, err = server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert "Traceback" not in err, err[-3000:]


def test_every_readme_command_has_a_case():
    text = README.read_text(encoding="utf-8")
    blocks, inline = block_commands(text), inline_commands(text)
    assert "taskkit run sentiment" in blocks and len(blocks) >= 10, blocks  # the parser finds them
    assert set(blocks) == set(BLOCK_COMMANDS), (
        f"README commands without a case: {sorted(set(blocks) - set(BLOCK_COMMANDS))}; "
        f"cases for commands no longer in the README: {sorted(set(BLOCK_COMMANDS) - set(blocks))}")
    assert set(inline) == set(INLINE_COMMANDS), (
        f"inline README commands without a case: {sorted(set(inline) - set(INLINE_COMMANDS))}; "
        f"cases no longer in the README: {sorted(set(INLINE_COMMANDS) - set(inline))}")


@pytest.mark.parametrize("command", list(BLOCK_COMMANDS), ids=lambda c: re.sub(r"\W+", "-", c[8:60]).strip("-"))
def test_block_command_runs(command: str, scratch, run_taskkit):
    execute(command, BLOCK_COMMANDS[command], scratch, run_taskkit)


@pytest.mark.parametrize("command", list(INLINE_COMMANDS), ids=lambda c: re.sub(r"\W+", "-", c[8:60]).strip("-"))
def test_inline_command_runs(command: str, scratch, run_taskkit):
    case = INLINE_COMMANDS[command]
    if case is None:
        words = command.split()  # a placeholder such as TASK, or a command's bare name
        assert words[-1].isupper() or (len(words) == 2 and any(c.startswith(command) for c in BLOCK_COMMANDS))
        return
    if isinstance(case, str):  # run by another test: it must exist and run this command
        path, name = case.split("::")
        source = (REPO / path).read_text(encoding="utf-8")
        assert f"def {name}(" in source and '"run", "spam", "--mode", "full"' in source
        return
    execute(command, case, scratch, run_taskkit)


def test_parser_reads_chains_comments_and_inline_quotes():
    text = ("Run:\n\n```bash\npip install x && HF_HUB_OFFLINE=1 taskkit run sentiment\n"
            "taskkit tasks      # what there is\n```\n\nThen `taskkit merge RUN OUT` or `taskkit.json`.\n"
            "```python\ntaskkit.run('x')\n```\n")
    assert block_commands(text) == ["taskkit run sentiment", "taskkit tasks"]
    assert inline_commands(text) == ["taskkit merge RUN OUT"]
    assert (TESTS / "test_example_plugin.py").is_file()
