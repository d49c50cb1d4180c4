"""LVLMs: an interleaved-prompt interface (score, generate), a transformers backend with
decoder-layer hooks that see every image's visual tokens (``drum.lvlm.hooks``, imported from
there so that this package stays free of torch), and the built-in tiny LLaVA that DRUM trains
itself."""

from drum.lvlm.base import LVLM, ScoreResult
from drum.lvlm.prompt import (
    ICLPrompt,
    ImagePart,
    Part,
    PromptTemplate,
    TextPart,
    Turn,
    build_prompt,
)

__all__ = [
    "LVLM",
    "ICLPrompt",
    "ImagePart",
    "Part",
    "PromptTemplate",
    "ScoreResult",
    "TextPart",
    "Turn",
    "build_prompt",
]
