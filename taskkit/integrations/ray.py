"""Scoring a Ray Data dataset with a taskkit model folder: ``pip install taskkit[ray]``.

>>> import ray
>>> from taskkit.integrations.ray import TaskkitPredictor
>>> ray.init(address="auto")                       # or ray.init() on one machine
>>> ds = ray.data.read_parquet("s3://bucket/reviews/")
>>> scored = ds.map_batches(TaskkitPredictor, fn_constructor_kwargs={"model_dir": "runs/sst2"},
...                         batch_size=256, concurrency=8)
>>> scored.write_parquet("s3://bucket/reviews-scored/")

Ray starts ``concurrency`` actors; each loads the folder once (the model folder must be readable
where the actors run: a shared file system, or copied onto each node) and predicts the batches
sent to it. Each row gets the columns of the record ``taskkit predict`` prints for it that the
input lacks, for any task: ``predicted`` (a label, or a list of labels for a multi-label model)
and ``probabilities`` (label -> probability) for classification, pairs, relations and zero-shot
models; ``entities`` (text, type, start, end, score) for NER.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskkit.errors import TaskkitError

if TYPE_CHECKING:
    from taskkit.contracts import Predictor


class TaskkitPredictor:
    """A callable class for ``ray.data.Dataset.map_batches``: a taskkit model folder predicting
    batches (``"numpy"`` dicts of columns, or pandas DataFrames), adding the prediction columns.

    ``text_column``: the column holding the text (given to the task as ``text``; pair and relation
    tasks read their own columns, as ``taskkit predict`` does for a JSONL row). ``batch_size``: the
    most rows predicted at a time, cutting a large Ray batch into pieces (default: all of it); the
    model's own batches inside are the folder's inference batch size.
    """

    def __init__(self, model_dir: str | Path, text_column: str = "text", batch_size: int | None = None) -> None:
        from taskkit.api import load

        self.model_dir = str(model_dir)
        self.text_column = text_column
        if batch_size is not None and batch_size < 1:
            raise TaskkitError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.predictor: Predictor = load(model_dir)

    def __call__(self, batch: Any) -> Any:
        from taskkit.api import predict

        frame = hasattr(batch, "to_dict") and hasattr(batch, "columns")  # a pandas DataFrame
        columns: dict[str, list[Any]] = (
            {str(c): batch[c].tolist() for c in batch.columns} if frame
            else {str(c): _as_list(v) for c, v in batch.items()})
        if self.text_column not in columns:
            raise TaskkitError(f"{self.model_dir}: the batch has no column {self.text_column!r} (columns: "
                               f"{', '.join(columns) or 'none'}): set text_column")
        count = len(columns[self.text_column])
        rows = []
        for i in range(count):
            row = {name: values[i] for name, values in columns.items()}
            row["text"] = row[self.text_column]
            row["_where"] = f"row {i + 1} of a batch (column {self.text_column!r})"
            rows.append(row)
        step = self.batch_size or max(1, count)
        records = [r for start in range(0, count, step) for r in predict(self.predictor, rows[start:start + step])]
        added = [k for k in records[0] if k not in columns and k != "text"] if records else []
        out = dict(columns)
        for key in added:
            out[key] = [r.get(key) for r in records]
        if frame:
            import pandas as pd

            return pd.DataFrame(out)
        import numpy as np

        return {k: _as_array(v, np) for k, v in out.items()}


def _as_list(values: Any) -> list[Any]:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _as_array(values: list[Any], np: Any) -> Any:
    """A column for Ray: plain values as a typed array, dicts and lists (probabilities, entities)
    as an object array of Python values, which Ray stores as Arrow structs / lists."""
    if values and isinstance(values[0], (dict, list)):
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array
    return np.asarray(values)
