"""Data: the ``Example`` record, JSONL datasets, image I/O and bundled real images."""

from drum.data.example import Example
from drum.data.jsonl import DataError, read_examples, write_examples

__all__ = ["DataError", "Example", "read_examples", "write_examples"]
