"""Reading user data: files and folders into examples, splits, and dev carving."""

from taskkit.data.readers import read_records
from taskkit.data.splits import load_splits, stratified_split

__all__ = ["load_splits", "read_records", "stratified_split"]
