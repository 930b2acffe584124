"""Batch inference over files of any size: streamed in chunks, resumable, sharded over processes.

``taskkit predict MODEL --input FILE --output FILE`` and :func:`taskkit.api.predict_file` run
:func:`predict_file`; :mod:`taskkit.integrations.ray` runs the same records on a Ray cluster.
"""

from __future__ import annotations

from taskkit.batch_predict.streaming import CHUNK_SIZE, Written, predict_file, record_lines

__all__ = ["CHUNK_SIZE", "Written", "predict_file", "record_lines"]
