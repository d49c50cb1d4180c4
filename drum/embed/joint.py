"""``LVLMEmbedder``: an LVLM's last-token hidden state as a joint image+text embedding.

The recipe of GME (gme-Qwen2-VL) and VLM2Vec: one interleaved input, the example's images then
its text (after an instruction, if any), runs through the LVLM once, and the final layer's
hidden state (after the final norm) at the input's last real token, L2-normalised, is the
example's vector. The pair is embedded together, so the text can attend to the image and the
vector can say "a question about *this* image", which two separate embeddings concatenated
(``concat``) cannot.

What was followed, from the reference code read for it (VLM2Vec's ``MMEBModel.encode_input``
and ``_pooling`` with ``pooling="last"``, ``normalize=True``; GME's ``GmeQwen2VL.forward`` and
``embed`` as vendored in the VLM2Vec repository):

* the vector is ``hidden_states[-1]`` (``last_hidden_state`` of the language model, after its
  final norm) at the last position whose attention mask is 1, then ``x / ||x||_2``;
* the input is a chat turn: images first, then the text, then the assistant header (GME's
  ``...<|im_start|>assistant\\n``), rendered here by the LVLM's own chat template, as
  ``HFLVLM`` renders an ICL query, so any ``HFLVLM`` checkpoint works unchanged;
* an instruction leads the text, as VLM2Vec writes its task instruction before the query text
  (GME puts it in a system turn, which not every chat template has).

Where this differs, and why:

* GME appends ``<|endoftext|>`` after the assistant header and reads that token; a token that
  exists under one name in every tokenizer does not, so the last token read here is the
  template's own last one (the assistant header's end), the position where the LVLM would
  start its answer;
* GME and VLM2Vec pad on the left (flash attention); here batches are padded on the right. A
  plain forward numbers positions from the first column, so a left-padded short row would see
  shifted positions, whereas with right padding a causal model's real tokens never see the
  padding: a batched vector equals the one-at-a-time vector, and the last real token of row
  ``r`` is at ``attention_mask[r].sum() - 1``.

The default instruction is empty: the built-in LVLM's word-level vocabulary has no words for
one. For a checkpoint trained as an embedder pass the instruction it was trained with.

Batches are ``HFLVLM.score_inputs`` with empty answers: the prompt ids exactly as scoring and
generation see them, the image-feature cache of LLaVA-style models included, a prompt longer
than the context refused (``ContextOverflowError``).

Images are taken by path (``ImagePart``): an image in memory is a ``TypeError``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from drum.data.images import ImageInput
from drum.embed.base import JointEmbedder, l2_normalize
from drum.lvlm.hf import HFLVLM
from drum.lvlm.prompt import ICLPrompt, ImagePart, Part, TextPart, Turn

# Changes whenever the vectors of one (model, instruction) could change: part of the fingerprint.
RECIPE = "last-token-v1"


def _image_path(image: ImageInput) -> Path:
    if isinstance(image, str | os.PathLike):
        return Path(image)
    raise TypeError(
        f"LVLMEmbedder embeds images by path, got a {type(image).__name__}; save it to a file"
    )


class LVLMEmbedder(JointEmbedder):
    """Joint (images + text) embeddings from any ``HFLVLM`` checkpoint (module docstring).

    Args:
        lvlm: a hub id or ``save_pretrained`` directory (loaded as an ``HFLVLM``), or an
            ``HFLVLM`` already loaded (shared with evaluation: one copy of the weights).
        instruction: text put before every input's text (default none).
        device, dtype, trust_remote_code: passed to ``HFLVLM`` when ``lvlm`` is a path.

    ``embed_images`` embeds each image alone (with the instruction), ``embed_texts`` each text
    alone; ``embed_pairs`` / ``embed_examples`` embed images and text together. All rows are
    unit vectors of the language model's width (``dim``).

    Example::

        embedder = LVLMEmbedder("Qwen/Qwen2-VL-2B-Instruct")  # or a local directory
        vectors = embedder.embed_examples(pool)  # (len(pool), dim), unit rows
        similarity = vectors @ vectors.T
    """

    def __init__(
        self,
        lvlm: str | Path | HFLVLM,
        instruction: str = "",
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        if isinstance(lvlm, HFLVLM):
            self.lvlm = lvlm
        else:
            self.lvlm = HFLVLM(
                lvlm, device=device, dtype=dtype, trust_remote_code=trust_remote_code
            )
        self.name = self.lvlm.name
        self.instruction = instruction.strip()
        self._dim = int(self.lvlm.model.config.get_text_config().hidden_size)
        recipe = f"{RECIPE}|{self.instruction}"
        if self.lvlm.model.dtype != torch.float32:  # other weights, other vectors
            recipe += f"|dtype={self.lvlm.model.dtype}"
        digest = hashlib.sha256(recipe.encode()).hexdigest()[:8]
        self._fingerprint = f"joint-{self.lvlm.fingerprint}-{digest}"

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def prompt(self, images: Sequence[ImageInput], text: str) -> ICLPrompt:
        """The one-turn prompt whose last token is read: ``images`` in order, then the
        instruction and ``text`` (either may be empty, not both with no image)."""
        words = " ".join(piece for piece in (self.instruction, text.strip()) if piece)
        parts: list[Part] = [ImagePart(_image_path(image)) for image in images]
        if words:
            parts.append(TextPart(words))
        if not parts:
            raise ValueError("LVLMEmbedder: nothing to embed (no image, no text, no instruction)")
        return ICLPrompt(demos=(), query=Turn(tuple(parts)))

    def embed_pairs(
        self,
        images: Sequence[Sequence[ImageInput]],
        texts: Sequence[str],
        batch_size: int = 16,
        progress: bool = False,
    ) -> np.ndarray:
        if len(images) != len(texts):
            raise ValueError(f"LVLMEmbedder: {len(images)} image lists but {len(texts)} texts")
        prompts = [self.prompt(row, text) for row, text in zip(images, texts, strict=True)]
        return self._embed(prompts, batch_size, "embedding pairs", progress)

    def embed_images(
        self, images: Sequence[ImageInput], batch_size: int = 16, progress: bool = False
    ) -> np.ndarray:
        prompts = [self.prompt([image], "") for image in images]
        return self._embed(prompts, batch_size, "embedding images", progress)

    def embed_texts(
        self, texts: Sequence[str], batch_size: int = 16, progress: bool = False
    ) -> np.ndarray:
        prompts = [self.prompt([], text) for text in texts]
        return self._embed(prompts, batch_size, "embedding texts", progress)

    @torch.inference_mode()
    def _embed(
        self, prompts: Sequence[ICLPrompt], batch_size: int, desc: str, progress: bool
    ) -> np.ndarray:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        chunks = [np.zeros((0, self.dim), dtype=np.float32)]
        starts = range(0, len(prompts), batch_size)
        for start in tqdm(starts, desc=desc, disable=not progress or len(starts) < 2):
            chunks.append(self._last_token_states(prompts[start : start + batch_size]))
        return l2_normalize(np.concatenate(chunks))

    def _last_token_states(self, prompts: Sequence[ICLPrompt]) -> np.ndarray:
        """``(len(prompts), dim)``: each prompt's final hidden state at its last real token."""
        inputs = self.lvlm.score_inputs(prompts, [[] for _ in prompts])  # right-padded
        extra: dict[str, Any] = dict(inputs.extra)
        if "logits_to_keep" in extra:  # no logits are read: compute one position's only
            extra["logits_to_keep"] = 1
        output = self.lvlm.forward(
            inputs.input_ids,
            inputs.attention_mask,
            inputs.visual,
            output_hidden_states=True,
            **extra,
        )
        states = getattr(output, "hidden_states", None)
        if not states:
            raise ValueError(
                f"{self.name}: a {self.lvlm.model_type} forward returns no hidden_states, so "
                "LVLMEmbedder cannot read its last token"
            )
        hidden = states[-1]  # (B, T, D), after the final norm
        last = inputs.attention_mask.sum(dim=1) - 1  # (B,): right padding
        rows = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, D)
        return rows.float().cpu().numpy()
