"""Every word the built-in DEMON tasks write (instructions, contexts, choices, responses), for
the built-in word-level tokenizer: the world's vocabulary and the words these tasks add."""

from __future__ import annotations

from drum.builtin.demon.instructions import INSTRUCTIONS
from drum.builtin.demon.scenes import COLUMN_WORDS, LETTERS, ORDINALS, ROW_WORDS
from drum.builtin.world.language import vocabulary as world_vocabulary

# Words of the contexts and answers beyond the world's own (digits name the marked images).
TASK_WORDS = (
    *ORDINALS, *LETTERS, *ROW_WORDS, *COLUMN_WORDS, *(str(d) for d in range(10)),
    "object", "moved", "places",
    "human", "assistant", ":", ".", "?", ",", "and", "the", "image", "images", "objects",
    "in", "are", "what", "how", "many", "shape", "size", "colour", "comes", "next", "changed",
    "to", "blank", "which", "fills", "fill", "facts", "keeps", "who", "with", "marked", "do",
    "two", "show", "same", "different", "number", "of", "shows", "choice", "list", "your",
    "answer", "is",
)  # fmt: skip


def vocabulary() -> list[str]:
    """The sorted words of the world and of every built-in DEMON task."""
    words = set(world_vocabulary()) | set(TASK_WORDS)
    for instructions in INSTRUCTIONS.values():
        for text in instructions:
            words.update(text.split())
    return sorted(words)
