"""LVLMs: an interleaved-prompt interface (score, generate), a transformers backend, and the
built-in tiny LLaVA that DRUM trains itself."""

from drum.lvlm.base import LVLM, ScoreResult
from drum.lvlm.prompt import ICLPrompt, PromptTemplate, Turn, build_prompt

__all__ = ["LVLM", "ICLPrompt", "PromptTemplate", "ScoreResult", "Turn", "build_prompt"]
