"""Data: the ``Example`` record, JSONL datasets, image I/O and bundled real images.

The names below load lazily (PEP 562): importing the package imports none of its modules.
"""

from drum.utils.lazy import lazy_exports

__all__ = [
    "DataError",
    "Example",
    "ImageInput",
    "NoAnswersError",
    "TASK_TYPES",
    "image_key",
    "load_image",
    "read_examples",
    "write_examples",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "TASK_TYPES": "drum.data.example",
        "Example": "drum.data.example",
        "NoAnswersError": "drum.data.example",
        "DataError": "drum.data.jsonl",
        "read_examples": "drum.data.jsonl",
        "write_examples": "drum.data.jsonl",
        "ImageInput": "drum.data.images",
        "image_key": "drum.data.images",
        "load_image": "drum.data.images",
    },
)
