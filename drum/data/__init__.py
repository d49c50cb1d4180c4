"""Data: the ``Example`` record, JSONL datasets, image I/O and bundled real images."""

from drum.data.example import TASK_TYPES, Example, NoAnswersError
from drum.data.images import ImageInput, image_key, load_image
from drum.data.jsonl import DataError, read_examples, write_examples

__all__ = [
    "TASK_TYPES",
    "DataError",
    "Example",
    "ImageInput",
    "NoAnswersError",
    "image_key",
    "load_image",
    "read_examples",
    "write_examples",
]
