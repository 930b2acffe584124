"""What taskkit removes is only what it wrote: a file or folder with taskkit's temporary names
but someone else's content is refused or left alone, byte for byte."""

from __future__ import annotations

import json

import pytest

from taskkit.errors import TaskkitError


def test_a_foreign_file_at_a_part_path_is_refused_and_kept(tmp_path):
    from taskkit.batch_predict import sharding

    part = sharding.part_path(tmp_path / "out.jsonl", 0, 2)
    part.write_text("my notes, not predictions\n", encoding="utf-8")
    with pytest.raises(TaskkitError, match="not a part of an earlier taskkit predict run"):
        sharding.open_part(part)
    assert part.read_text(encoding="utf-8") == "my notes, not predictions\n"


def test_a_leftover_part_of_an_interrupted_run_is_replaced(tmp_path):
    from taskkit.batch_predict import sharding

    part = sharding.part_path(tmp_path / "out.jsonl", 1, 2)
    part.write_bytes(json.dumps({"text": "a", "predicted": "x"}).encode() + b"\n{\"text\": \"b\", \"pre")  # torn
    with sharding.open_part(part) as handle:
        handle.write(b"new\n")
    assert part.read_bytes() == b"new\n"


def test_checkpoint_folders_holding_a_users_file_are_neither_read_nor_removed(tmp_path):
    from taskkit.contracts import RunConfig
    from taskkit.kernel import checkpoint

    folder = tmp_path / "checkpoints"
    theirs, leftover = folder / "step-0000001", folder / ".step-0000002.tmp-7"
    for path in (theirs, leftover):
        path.mkdir(parents=True)
        (path / "notes.txt").write_text("mine", encoding="utf-8")
    (theirs / checkpoint.META).write_text("{}", encoding="utf-8")
    assert checkpoint.complete(folder) == []
    checkpoint.finish(RunConfig(checkpoint_dir=str(folder)))
    assert (theirs / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert (leftover / "notes.txt").read_text(encoding="utf-8") == "mine"
