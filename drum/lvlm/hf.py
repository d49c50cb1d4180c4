"""``transformers`` LVLMs (LLaVA, Idefics3 / SmolVLM, Qwen2-VL, ...) behind the ``LVLM`` API.

Prompts are rendered by the model's own chat template and processor, so images are expanded
into exactly the visual tokens the model was trained with. The built-in LVLM is a tiny
``LlavaForConditionalGeneration`` saved with its processor and chat template, so it runs
through this very class.

Scoring appends the answer's tokens to each rendered prompt and sums their log-probabilities.
Only the logits at answer positions are materialised (``logits_to_keep``), and for the families
whose record allows it (``feature_cache``: LLaVA, Gemma 3, Qwen2-VL, Qwen2.5-VL, Qwen3-VL) the
image encodings are computed once per distinct image and reused across prompts, batches and
calls (an LRU cache keyed by image content, ``drum.lvlm.image_features``), in scoring,
generation and the shared-prefix scorer; ``answer_loss``, VPG-C and the attention reader bypass
it (``feature_cache_bypassed``). Qwen's batches pass the encodings with ``image_grid_thw``
beside (its M-RoPE positions); Qwen3-VL's cached encodings carry each image's deepstack
features, passed back in transformers' deepstack output. With that cache on,
LLaVA's ``score`` skips the
processor's image work altogether for images already encoded (``_encode_rows``: placeholders
expanded by the encodings' lengths, the same ids as the processor's), and sorts each window of
batches by length to cut padding; results keep the prompts' order. That path also runs the
last decoder layer's MLP at the answer positions alone (``drum.lvlm.last_layer_mlp``). Scoring
forwards build no KV cache (``use_cache=False``: nothing is decoded after them).

``layer_hook`` rewrites a decoder layer's output in scoring and in generation's prefill, with
the visual-token positions of every image of the batch's prompts (``drum.lvlm.hooks``); the
per-image spans are cut by the token counts the processor gave each image. Calls without a
hook run exactly as if hooks did not exist.

Context length (``drum.lvlm.context``): a prompt whose tokens plus the answer (scoring) or
``max_new_tokens`` (generation) exceed the model's context (``HFLVLM.context_length``) is
refused by default with a ``ContextOverflowError``; with ``context_overflow="drop_demos"`` its
oldest demonstrations are dropped until it fits, each such prompt counted
(``truncated_prompts``, ``dropped_demos``) and logged. Prompts that fit run exactly as they
would without the check.

Processors (``drum.lvlm.processors``): ``AutoProcessor``, or what the family's record names
where that cannot serve (Qwen2-VL / Qwen2.5-VL / Qwen3-VL and LLaVA-OneVision without
torchvision: their image half alone; BLIP-2 and Idefics2: DRUM's own). Models that take a
per-token image mask (the record's ``token_types``: Qwen's M-RoPE ``mm_token_type_ids``,
Gemma 3's ``token_type_ids`` for its bidirectional attention within images) get it derived
from the final (re-padded) token ids;
the cross-attention masks of IDEFICS and Mllama come from the processor's
``token_inputs`` (InternVL and Mistral3 too are served by their image half without
torchvision). Mllama's batches run one pass per image count (``drum.lvlm.image_count_groups``).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from drum.lvlm.base import LVLM, ScoreResult
from drum.lvlm.bucketed import score_bucketed
from drum.lvlm.context import (
    CONTEXT_OVERFLOW,
    context_length,
    fit_to_context,
)
from drum.lvlm.context import ContextOverflowError as ContextOverflowError  # re-exported
from drum.lvlm.encoding import PromptEncoding
from drum.lvlm.families import served_family
from drum.lvlm.hooks import LayerHook, LayerHooks, VisualPositions
from drum.lvlm.image_count_groups import in_image_count_groups
from drum.lvlm.image_features import DEFAULT_MAX_BYTES, ImageFeatureCache
from drum.lvlm.last_layer_mlp import last_layer_mlp, only_at_positions
from drum.lvlm.prefix import score_with_shared_prefixes, shares_prefixes
from drum.lvlm.processors import load_processor
from drum.lvlm.prompt import ICLPrompt
from drum.lvlm.qwen_processor import Qwen2VLImageOnlyProcessor as Qwen2VLImageOnlyProcessor
from drum.utils import allocator
from drum.utils.fingerprint import directory_digest

# Distinct answers whose token ids ``HFLVLM`` remembers (cleared when full).
_ANSWER_MEMO_LIMIT = 1 << 16


@dataclass(frozen=True, eq=False)
class ScoreInputs:
    """One right-padded scoring batch (``HFLVLM.score_inputs``): prompt + answer ids, the
    visual positions (None unless asked for), the model's other inputs (vision inputs,
    ``logits_to_keep``, ...) and where each answer is.

    With ``rows, positions, tokens = answer_index()``, ``logits[rows, positions]`` (of
    ``HFLVLM.forward(input_ids, attention_mask, visual, **extra)``) predict ``tokens``, every
    row's ``answer_ids`` in turn: the kept logits start at ``offset``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    visual: VisualPositions | None
    extra: dict[str, Any]
    prompt_lengths: list[int]
    answer_ids: list[list[int]]
    offset: int

    def answer_index(
        self, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(rows, positions, tokens)`` of every answer token of the batch, row by row:
        ``logits[rows, positions]`` (the kept logits) predict ``tokens``."""
        rows: list[int] = []
        positions: list[int] = []
        tokens: list[int] = []
        for row, answer in enumerate(self.answer_ids):
            first = self.prompt_lengths[row] - 1 - self.offset
            rows += [row] * len(answer)
            positions += range(first, first + len(answer))
            tokens += answer
        return (
            torch.tensor(rows, device=device),
            torch.tensor(positions, device=device),
            torch.tensor(tokens, device=device),
        )


class HFLVLM(PromptEncoding, LVLM):
    """An ``AutoModelForImageTextToText`` and its processor (``drum.lvlm.processors``).

    Args:
        model_name_or_path: hub id (local cache when offline) or ``save_pretrained`` directory.
        device: torch device.
        dtype: torch dtype for the weights (default: as saved).
        device_map: ``transformers``' ``device_map`` (e.g. ``"auto"``: layers spread over the
            visible GPUs by ``accelerate``, for a model too large for one); replaces
            ``device``.
        trust_remote_code: passed to ``from_pretrained``; off unless the user asks.
        image_feature_cache_size: distinct images whose encodings are kept (LLaVA, Gemma 3,
            Qwen2-VL, Qwen2.5-VL, Qwen3-VL; ``HFLVLM.feature_cache``,
            ``drum.lvlm.image_features``); 0 keeps none (every pass runs the vision tower on
            its images, as without a cache).
        image_feature_cache_bytes: the most memory those encodings may hold (default 2 GiB,
            on the model's device; ``None``: no byte bound): the least recently used image goes
            first when either bound is passed.
        context_overflow: for a prompt longer than the context (module docstring), ``"error"``
            (raise ``ContextOverflowError``) or ``"drop_demos"`` (drop its oldest
            demonstrations until it fits, counted in ``truncated_prompts`` and
            ``dropped_demos``).
        retain_freed_memory: for a model on the CPU, make glibc keep freed activations for
            reuse rather than return them to the OS (``drum.utils.allocator``: process wide,
            left alone where the environment sets malloc's thresholds); about a fifth of the
            built-in LVLM's scoring time went to page faults without it.
        share_prefixes: let ``score`` compute the key/value states of a demonstration once
            for all the prompts that start with it (``drum.lvlm.prefix``: which families and
            when); off runs every prompt whole.

    Example::

        lvlm = HFLVLM("llava-hf/llava-interleave-qwen-0.5b-hf")  # or a local directory
        prompt = build_prompt(demos, query)
        [reply] = lvlm.generate([prompt], max_new_tokens=8)
        [score] = lvlm.score([prompt], [query.answer])  # score.sum = log p(answer | prompt)
    """

    def __init__(
        self,
        model_name_or_path: str | Path,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        trust_remote_code: bool = False,
        image_feature_cache_size: int = 4096,
        image_feature_cache_bytes: int | None = DEFAULT_MAX_BYTES,
        context_overflow: str = "error",
        device_map: str | dict[str, Any] | None = None,
        retain_freed_memory: bool = True,
        share_prefixes: bool = True,
    ) -> None:
        from transformers import AutoModelForImageTextToText

        from drum.utils.model_path import ModelPathError, check_model_path, model_load_error

        if context_overflow not in CONTEXT_OVERFLOW:
            raise ValueError(
                f"context_overflow must be one of {CONTEXT_OVERFLOW}, got {context_overflow!r}"
            )
        self.context_overflow = context_overflow
        self.share_prefixes = share_prefixes
        # Prompts shortened to fit the context, and the demonstrations dropped from them.
        self.truncated_prompts = 0
        self.dropped_demos = 0
        self.name = str(model_name_or_path)
        self.device = torch.device(device)
        check_model_path(model_name_or_path)  # ModelPathError, before transformers sees it
        try:
            self.processor = load_processor(model_name_or_path, trust_remote_code)
        except (OSError, ValueError, KeyError) as error:
            raise model_load_error(model_name_or_path, error) from error
        # Checked before the (possibly large) weights are loaded.
        if getattr(self.processor, "chat_template", None) is None:
            raise ModelPathError(
                f"{self.name}: the processor has no chat template to render prompts with "
                "(save one with the processor: processor.chat_template = ...)"
            )
        kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
        if dtype is not None:
            kwargs["dtype"] = dtype
        if device_map is not None:  # drum.cli --device-map: accelerate spreads the layers
            kwargs["device_map"] = device_map
        try:
            self.model = AutoModelForImageTextToText.from_pretrained(model_name_or_path, **kwargs)
        except (OSError, ValueError, KeyError) as error:
            raise model_load_error(model_name_or_path, error) from error
        if device_map is None:
            self.model.to(self.device)
        else:  # inputs go where accelerate put the input embeddings
            self.device = self.model.get_input_embeddings().weight.device
        self.model.eval()
        if retain_freed_memory and self.device.type == "cpu":
            allocator.retain_freed_memory()
        self.tokenizer = self.processor.tokenizer
        self.model_type = str(self.model.config.model_type)
        self.family = served_family(self.model_type)
        self.image_token_id = self._image_token_id()
        self._accepts_logits_to_keep = (
            "logits_to_keep" in inspect.signature(self.model.forward).parameters
        )
        # The forward argument for the per-token image mask (Qwen2-VL's M-RoPE, Gemma 3's
        # bidirectional image attention); for a stand-in record, what the signature shows.
        accepts = "mm_token_type_ids" in inspect.signature(self.model.forward).parameters
        self._token_types = self.family.token_types or ("mm_token_type_ids" if accepts else "")
        # Post-projector image encodings, reused across prompts and calls (the families whose
        # record names a ``feature_cache`` layout). The processor is fixed for this object's
        # life, so the images' content is the whole key (``drum.lvlm.image_features``).
        self.feature_cache = ImageFeatureCache(
            self.model,
            getattr(self.processor, "image_processor", None),
            self.device,
            image_feature_cache_size,
            self.family.feature_cache or "rows",
            image_feature_cache_bytes,
        )
        self._feature_cache_bypass = 0
        self._answer_memo: dict[str, list[int]] = {}
        # LlavaProcessor expands each image placeholder into image tokens only (as many as the
        # image's encoding has rows), so cached encodings let scoring skip the processor's
        # image work (``_encode_from_features``); a subclass might expand otherwise.
        self._expands_like_llava = type(self.processor).__name__ == "LlavaProcessor"
        # The fast path runs it only where logits are read (``drum.lvlm.last_layer_mlp``).
        self._last_mlp = last_layer_mlp(self.model)
        self.context_length = context_length(self.model.config, self.tokenizer)
        self._hooks = LayerHooks(self.model)
        path = Path(model_name_or_path)
        content = (
            directory_digest(path)
            if path.is_dir()
            else self.name + str(getattr(self.model.config, "_commit_hash", ""))
        )
        self._fingerprint = f"{self.model_type}-{hashlib.sha256(content.encode()).hexdigest()[:16]}"

    # ----------------------------------------------------------------------------- rendering
    def _image_token_id(self) -> int | None:
        for attribute in ("image_token_id", "image_token_index"):
            value = getattr(self.model.config, attribute, None)
            if isinstance(value, int):
                return value
        return getattr(self.processor, "image_token_id", None)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    # ---------------------------------------------------------------------------------- hooks
    def layer_hook(self, layer_index: int, hook: LayerHook) -> AbstractContextManager[None]:
        """Let ``hook(hidden, visual) -> hidden`` rewrite decoder layer ``layer_index``'s output
        inside a ``with`` block: the point where VPG-C adds residual visual prompts.

        ``hidden`` is ``(B, T, D)``; ``visual`` (``VisualPositions``) holds the visual-token
        mask, one ``[start, end)`` span per image of each row, and each row's last prompt token.
        The hook acts on ``score``'s forward passes (right-padded prompt + answer) and on the
        prefill of ``generate`` (left-padded prompt); decode steps, which reuse the hooked
        prompt states from the KV cache, are not hooked (see ``drum.lvlm.hooks``)."""
        return self._hooks.hook(layer_index, hook)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        visual: VisualPositions | None = None,
        **kwargs: Any,
    ) -> Any:
        """The model's forward pass with ``visual`` exposed to layer hooks (``None`` only when
        no hook is installed: a hooked layer without positions raises)."""
        with self._hooks.batch(visual):
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    # ------------------------------------------------------------------------ context length
    def _fit(
        self,
        prompts: Sequence[ICLPrompt],
        prompt_ids: Sequence[list[int]],
        reserve: Sequence[int],
        start: int,
        what: str,
    ) -> list[ICLPrompt] | None:
        """``drum.lvlm.context.fit_to_context`` with this model's context and policy; the
        prompts it shortens are counted in ``truncated_prompts`` / ``dropped_demos``."""
        fitted, truncated, dropped = fit_to_context(
            prompts,
            prompt_ids,
            reserve,
            start,
            what,
            self.context_length,
            self.context_overflow,
            self.name,
            lambda prompt: len(self._encode([prompt])[0][0]),
        )
        self.truncated_prompts += truncated
        self.dropped_demos += dropped
        return fitted

    def _encoded_to_fit(
        self,
        encode: Callable[[Sequence[ICLPrompt]], tuple],
        prompts: Sequence[ICLPrompt],
        reserve: Sequence[int],
        start: int,
        what: str,
    ) -> tuple:
        """``encode(prompts)`` (its first element: the prompt ids) with the prompts fitted to
        the context first (``_fit``): encoded again only when a prompt was shortened."""
        encoded = encode(prompts)
        fitted = self._fit(prompts, encoded[0], reserve, start, what)
        return encoded if fitted is None else encode(fitted)

    # -------------------------------------------------------------------------------- scoring
    def _answer_ids(self, answer: str) -> list[int]:
        """The answer's token ids, tokenised once per distinct answer (memoised)."""
        ids = self._answer_memo.get(answer)
        if ids is None:
            ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
            if not ids:
                raise ValueError(f"answer {answer!r} tokenizes to nothing")
            if len(self._answer_memo) >= _ANSWER_MEMO_LIMIT:
                self._answer_memo.clear()
            self._answer_memo[answer] = ids
        return list(ids)

    @torch.inference_mode()
    def score(
        self,
        prompts: Sequence[ICLPrompt],
        answers: Sequence[str],
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[ScoreResult]:
        """Log-likelihood of ``answers[i]`` after ``prompts[i]``, in the prompts' order.

        Where ``drum.lvlm.prefix.shares_prefixes`` holds (LLaVA-style models with the
        feature cache on, Qwen2-VL, Qwen2.5-VL, Qwen3-VL; no layer hook), prompts sharing
        demonstrations share their key/value prefix (``drum.lvlm.prefix``). Else LLaVA-style
        models with the feature cache on and no layer hook run ``drum.lvlm.bucketed`` (each
        window of ``BUCKET_WINDOW`` batches encoded in one go and batched by length); the scores are
        the same up to float rounding (a row's score never depends on its batch-mates: right
        padding, causal attention)."""
        if len(prompts) != len(answers):
            raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if shares_prefixes(self):
            return score_with_shared_prefixes(self, prompts, answers, batch_size, progress)
        # With a layer hook the batches stay in the prompts' order (what a hook sees).
        if self._expands_like_llava and self._uses_cached_features() and not self._hooks.active:
            return score_bucketed(self, prompts, answers, batch_size, progress)
        results: list[ScoreResult] = []
        starts = range(0, len(prompts), batch_size)
        for start in tqdm(starts, desc="scoring", disable=not progress or len(starts) < 2):
            batch_prompts = prompts[start : start + batch_size]
            batch_answers = answers[start : start + batch_size]
            results.extend(self._score_batch(batch_prompts, batch_answers, start))
        return results

    def score_inputs(
        self,
        prompts: Sequence[ICLPrompt],
        answer_ids: Sequence[list[int]],
        start: int = 0,
        positions: bool | None = None,
    ) -> ScoreInputs:
        """The right-padded batch that scores ``answer_ids[i]`` (token ids) after
        ``prompts[i]``: what ``score`` runs, and what a training loss on answer tokens runs.

        ``positions``: whether to compute the visual positions (default: when a layer hook
        is installed). Image encodings come from the feature cache (LLaVA, Gemma 3, Qwen2-VL,
        Qwen2.5-VL, Qwen3-VL) unless it is bypassed (``feature_cache_bypassed``)."""
        if positions is None:
            positions = self._hooks.active
        answer_ids = [list(a) for a in answer_ids]
        prompt_ids, vision, images, counts = self._encoded_to_fit(
            self._prompt_encoder(positions), prompts, [len(a) for a in answer_ids], start, "answer"
        )
        return self._assemble(prompt_ids, vision, images, counts, answer_ids)

    def _assemble(
        self,
        prompt_ids: list[list[int]],
        vision: dict[str, Any],
        images: list[list[Path]],
        counts: list[list[int]] | None,
        answer_ids: list[list[int]],
        trim_last: bool = False,
    ) -> ScoreInputs:
        """``score_inputs``' batch from encoded prompts (``_encode``'s or ``_encode_rows``').

        ``trim_last``: leave out each row's last answer token, which predicts nothing the
        score needs (a causal model's outputs at earlier positions never see it)."""
        cut = 1 if trim_last else 0
        sequences = [p + a[: len(a) - cut] for p, a in zip(prompt_ids, answer_ids, strict=True)]
        # Right padding: a causal model's outputs at real positions ignore later padding, so a
        # batched score equals the one-at-a-time score.
        batch = self._padded(sequences, [len(p) for p in prompt_ids], counts, False, vision)
        length = batch.input_ids.shape[1]
        extra = self._cached_image_features(
            images,
            {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in vision.items()},
        )
        extra.update(batch.token_types)
        # One pass, nothing decoded after it: the KV cache a forward builds by default would
        # never be read (building it took ~10% of the built-in LVLM's scoring forward).
        extra["use_cache"] = False
        # Logits are needed only where answer tokens are predicted: positions
        # [len(prompt) - 1, len(prompt) + len(answer) - 1) of every row.
        first = min(len(p) for p in prompt_ids) - 1
        if self._accepts_logits_to_keep:
            extra["logits_to_keep"] = torch.arange(first, length - 1 + cut, device=self.device)
            offset = first
        else:
            offset = 0
        return ScoreInputs(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            visual=batch.visual,
            extra=extra,
            prompt_lengths=[len(p) for p in prompt_ids],
            answer_ids=answer_ids,
            offset=offset,
        )

    def answer_loss(
        self, prompts: Sequence[ICLPrompt], answers: Sequence[str], add_eos: bool = False
    ) -> torch.Tensor:
        """Mean next-token cross-entropy over the answer tokens of one batch (plus an EOS after
        each answer if ``add_eos``): the training loss that matches ``score``, the prompts
        encoded exactly as ``score`` encodes them. Gradients flow into whichever parameters
        require them (the image-feature cache bypassed, so images are encoded in the graph);
        installed layer hooks act (their visual positions are computed).

        Example::

            lvlm.answer_loss(prompts, answers, add_eos=True).backward()
        """
        if len(prompts) != len(answers):
            raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
        if torch.is_inference_mode_enabled():
            raise RuntimeError(f"{self.name}: answer_loss cannot run under torch.inference_mode")
        eos = [self.tokenizer.eos_token_id] if add_eos else []
        if add_eos and eos[0] is None:
            raise ValueError(f"{self.name}: the tokenizer has no EOS token")
        answer_ids = [self._answer_ids(answer) + eos for answer in answers]
        with self.feature_cache_bypassed(), torch.enable_grad():
            inputs = self.score_inputs(prompts, answer_ids)
            logits = self.forward(
                inputs.input_ids, inputs.attention_mask, inputs.visual, **inputs.extra
            ).logits
        rows, positions, targets = inputs.answer_index(logits.device)
        return torch.nn.functional.cross_entropy(logits[rows, positions].float(), targets)

    def _score_batch(
        self, prompts: Sequence[ICLPrompt], answers: Sequence[str], start: int = 0
    ) -> list[ScoreResult]:
        def run(rows: list[int]) -> list[ScoreResult]:
            answer_ids = [self._answer_ids(answers[i]) for i in rows]
            inputs = self.score_inputs([prompts[i] for i in rows], answer_ids, start + rows[0])
            return self._score_from_inputs(inputs)

        return in_image_count_groups(prompts, run, self.family.batch_by_image_count)

    def _score_from_inputs(
        self, inputs: ScoreInputs, prune_last_mlp: bool = False
    ) -> list[ScoreResult]:
        """One forward pass over ``inputs``: each row's answer log-likelihood.

        ``prune_last_mlp``: run the last decoder layer's MLP only at the kept logit positions
        (``drum.lvlm.last_layer_mlp``); only where no hook reads hidden states (the fast path)."""
        keep = inputs.extra.get("logits_to_keep")
        pruned = (
            only_at_positions(self._last_mlp, keep)
            if prune_last_mlp and keep is not None and self._last_mlp is not None
            else nullcontext()
        )
        with pruned:
            logits = self.forward(
                inputs.input_ids, inputs.attention_mask, inputs.visual, **inputs.extra
            ).logits
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        # Every answer token's log-probability in one gather, summed per row (in float32).
        rows, positions, tokens = inputs.answer_index(log_probs.device)
        picked = log_probs[rows, positions, tokens]
        totals = torch.zeros(len(inputs.answer_ids), device=log_probs.device).index_add_(
            0, rows, picked
        )
        return [
            ScoreResult(sum=total, mean=total / len(answer), tokens=len(answer))
            for total, answer in zip(totals.tolist(), inputs.answer_ids, strict=True)
        ]

    # ----------------------------------------------------------------------------- generation
    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[ICLPrompt],
        max_new_tokens: int = 8,
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[str]:
        replies: list[str] = []
        starts = range(0, len(prompts), batch_size)
        for start in tqdm(starts, desc="generating", disable=not progress or len(starts) < 2):
            replies.extend(
                self._generate_batch(prompts[start : start + batch_size], max_new_tokens, start)
            )
        return replies

    def _generate_batch(
        self, prompts: Sequence[ICLPrompt], max_new_tokens: int, start: int = 0
    ) -> list[str]:
        def run(rows: list[int]) -> list[str]:
            chunk = [prompts[i] for i in rows]
            return self._generate_rows(chunk, max_new_tokens, start + rows[0])

        return in_image_count_groups(prompts, run, self.family.batch_by_image_count)

    def _generate_rows(
        self, prompts: Sequence[ICLPrompt], max_new_tokens: int, start: int = 0
    ) -> list[str]:
        # Encoded as ``score_inputs`` encodes (the feature cache's encodings).
        reserve = [max_new_tokens] * len(prompts)
        prompt_ids, vision, images, counts = self._encoded_to_fit(
            self._prompt_encoder(self._hooks.active), prompts, reserve, start, "new"
        )
        # Left padding so every row's next token comes at the same position.
        batch = self._padded(prompt_ids, [len(p) for p in prompt_ids], counts, True, vision)
        length = batch.input_ids.shape[1]
        extra = self._cached_image_features(
            images,
            {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in vision.items()},
        )
        extra.update(batch.token_types)
        # Hooks act on the prefill alone (the one pass as long as the padded prompt).
        with self._hooks.batch(batch.visual):
            output = self.model.generate(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id or 0,
                **extra,
            )
        new_tokens = output[:, length:]
        return [
            text.strip()
            for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        ]
