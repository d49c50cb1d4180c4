"""Shared demonstration prefixes: ``HFLVLM.score`` computes a demonstration's key/value states
once for every prompt that starts with it.

A feedback prompt is one candidate demonstration followed by the query, and during mining
neighbouring queries retrieve the same candidates, so many prompts of one scoring call begin
with the same tokens. Here the prompts of a call are grouped by their demonstrations; within a
group the longest common prefix of the token ids (the demonstration, its image's tokens
included, and whatever the queries share after it) runs through the model once, with the
KV cache on, and every prompt of the group runs only its own suffix (its query and answer)
against that cache:

* prefixes are batched (right-padded) by length, up to ``MAX_ROWS_PER_BATCH x batch_size``
  at a time; each keeps its states ``[:length]``;
* suffix batches are right-padded as ``score`` pads prompts, sorted by length, and hold as
  many token slots as ``batch_size`` whole prompts would (so more rows: ``_suffix_batches``);
  every row gets its own prefix's states, padded to the batch's longest prefix, and a 4D
  attention mask that hides the padding of both parts (causal inside the suffix);
* position ids continue from each row's prefix: ``prefix + t`` for LLaVA-style models; for
  Qwen's M-RoPE the full sequence's ``(3, T)`` positions (``get_rope_index``: image
  tokens take 2D positions, and text after an image resumes from the image's extent, so
  positions are not token indices) are computed and the suffix's slice passed;
* a prefix never ends inside an image's tokens (its image's encoding belongs to one part), and
  every row keeps at least its last prompt token in the suffix (its logit predicts the answer);
* each pass gets its own part's images' encodings (``mm_encoder_outputs``), in order. For
  Qwen3-VL these carry the images' deepstack features, which the model adds to the hidden
  states at the visual positions of the pass's own ids after its first decoder layers: the
  prefix pass adds its images', the suffix pass its own, and as the addition is per position,
  a prefix's key/value states are those the whole prompt's pass computes for its tokens.

Scores equal the unshared path's up to float rounding (``tests/lvlm/test_prefix.py``: within
1e-4 on LLaVA, Qwen2-VL, Qwen2.5-VL, Qwen3-VL and the built-in LVLM; batched equals one at a
time).

Where it runs (``shares_prefixes``): ``HFLVLM(share_prefixes=True)`` (the default), no layer
hook installed (a hook sees whole prompts; VPG-C's adapter installs one, so it always falls
back), and

* LLaVA-style models (the built-in LVLM included) with the image-feature cache on, outside
  ``feature_cache_bypassed``;
* Qwen2-VL, Qwen2.5-VL and Qwen3-VL (``MROPE_FAMILIES``), outside ``feature_cache_bypassed``;
  their images' encodings (Qwen3-VL's with its deepstack features) come from the image-feature
  cache where it is on (``image_feature_cache_size > 0``), else from one vision call per window
  in the cache's layout. Qwen2.5-VL's M-RoPE positions of images are Qwen2-VL's (its
  ``second_per_grid_ts`` concerns videos only); Qwen3-VL's come from its own
  ``get_rope_index``.

Everything else runs ``score``'s usual path: Idefics3 / SmolVLM, BLIP-2 (a family
that needs an image in every batch), families without a record, and LLaVA with the feature
cache off; none of them verified here. Only ``score`` uses it; ``score_inputs`` (training
losses) and ``generate`` are unchanged.

Memory: beside the activations, the path holds past states: those of a window's distinct
prefixes (at most ``WINDOW_BATCHES x batch_size`` of them) and, per suffix batch, a copy for
each row (rows x longest prefix x layers x 2 x the KV width). For the built-in LVLM that is a
few MB; for a 7B model with 576-token images it is of the order of a whole-prompt batch's
activations or more, so on a GPU near its memory limit pass a smaller ``batch_size`` or
``share_prefixes=False`` (not measured: no GPU was at hand).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from drum.lvlm.base import ScoreResult
from drum.lvlm.encoding import encoder_outputs
from drum.lvlm.image_features import Encoding
from drum.lvlm.last_layer_mlp import only_at_positions
from drum.lvlm.prompt import ICLPrompt, grouped_by_demos

if TYPE_CHECKING:
    from drum.lvlm.hf import HFLVLM

# Families whose positions are M-RoPE's (computed on the full sequence, sliced per part).
MROPE_FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
# Prompts encoded together (and grouped) per window: as many as ``score``'s fast path.
WINDOW_BATCHES = 4
# Prefix and suffix batches hold at most this many times ``batch_size`` rows: each part is
# about half a feedback prompt (2 ran the built-in LVLM's mining feedback 8% faster than 1, 4
# 6% slower than 2, in CPU time: benchmarks/README.md).
MAX_ROWS_PER_BATCH = 2


def shares_prefixes(lvlm: HFLVLM) -> bool:
    """Whether ``lvlm.score`` runs the shared-prefix path (module docstring)."""
    if not lvlm.share_prefixes or lvlm._hooks.active or lvlm._feature_cache_bypass:
        return False
    if lvlm._expands_like_llava:
        return lvlm._uses_cached_features()
    return lvlm.model_type in MROPE_FAMILIES


@dataclass
class _Window:
    """One window's encoded rows: prompt ids, each image's path, encoding and token count,
    answer ids, and (M-RoPE) every row's ``(3, T)`` positions over prompt + answer."""

    ids: list[list[int]]
    images: list[list[Path]]
    features: list[list[Encoding]]
    sizes: list[list[int]]
    answers: list[list[int]]
    positions: list[torch.Tensor] | None


def common_prefix(rows: Sequence[Sequence[Hashable]]) -> int:
    """Length of the longest common prefix of the rows."""
    first = rows[0]
    length = min(len(row) for row in rows)
    for row in rows[1:]:
        length = next((i for i in range(length) if row[i] != first[i]), length)
    return length


def _tokens(ids: list[int], images: list[Path], sizes: list[int], image_token: int | None) -> list:
    """``ids`` with each image token replaced by its image's path: equal tokens are equal
    inputs (every image's tokens are the same placeholder id)."""
    owners = [path for path, size in zip(images, sizes, strict=True) for _ in range(size)]
    spots = iter(owners)
    return [next(spots) if token == image_token else token for token in ids]


def image_safe(length: int, ids: list[int], sizes: list[int], image_token: int | None) -> int:
    """``length`` moved back to the first token of an image whose tokens it would split."""
    positions = [i for i, token in enumerate(ids) if token == image_token]
    start = 0
    for size in sizes:
        span = positions[start : start + size]
        start += size
        if span and span[0] < length <= span[-1]:
            return span[0]
    return length


def prefix_lengths(lvlm: HFLVLM, prompts: Sequence[ICLPrompt], window: _Window) -> list[int]:
    """Each row's shared prefix length: 0 for a row without demonstrations or whose
    demonstrations no other row of the window shows; else its group's common prefix, short of
    every row's last prompt token and of any image it would split."""
    groups: dict[tuple, list[int]] = {}
    for row, prompt in enumerate(prompts):
        if prompt.demos:
            groups.setdefault(prompt.demos, []).append(row)
    lengths = [0] * len(prompts)
    for rows in groups.values():
        if len(rows) < 2:
            continue
        token = lvlm.image_token_id
        tokens = [_tokens(window.ids[r], window.images[r], window.sizes[r], token) for r in rows]
        length = min(common_prefix(tokens), *(len(window.ids[r]) - 1 for r in rows))
        first = rows[0]
        length = image_safe(length, window.ids[first], window.sizes[first], lvlm.image_token_id)
        for row in rows:
            lengths[row] = length
    return lengths


def _images_before(sizes: list[int], ids: list[int], length: int, image_token: int | None) -> int:
    """How many of a row's images lie wholly before token ``length``."""
    seen = sum(1 for token in ids[:length] if token == image_token)
    count, total = 0, 0
    for size in sizes:
        if total + size > seen:
            break
        total += size
        count += 1
    return count


def _encode_window(lvlm: HFLVLM, rows: list[ICLPrompt], answers: list[str], first: int) -> _Window:
    """Prompt ids, image encodings and sizes, answer ids (and M-RoPE positions) of a window,
    prompts fitted to the context as ``score`` fits them."""
    answer_ids = [lvlm._answer_ids(answer) for answer in answers]
    reserve = [len(a) for a in answer_ids]
    if lvlm._expands_like_llava:
        ids, features, images, sizes = lvlm._encoded_to_fit(
            lvlm._encode_rows, rows, reserve, first, "answer"
        )
        return _Window(ids, images, features, sizes, answer_ids, None)
    ids, vision, images, _ = lvlm._encoded_to_fit(lvlm._encode, rows, reserve, first, "answer")
    return _mrope_window(lvlm, ids, vision, images, answer_ids)


def _mrope_window(
    lvlm: HFLVLM,
    ids: list[list[int]],
    vision: dict[str, Any],
    images: list[list[Path]],
    answer_ids: list[list[int]],
) -> _Window:
    """Qwen2-VL, Qwen2.5-VL, Qwen3-VL: every image's encoding, from the image-feature cache (the
    images it lacks encoded in one vision call) or, with the cache off, all encoded in one vision
    call (the cache's layout: Qwen3-VL's deepstack features too); and
    each row's M-RoPE positions over its prompt + answer tokens (``get_rope_index``, as the
    model's own forward computes them)."""
    inner = lvlm.model.model
    grids = vision.get("image_grid_thw")
    flat: list[Encoding] = []
    if grids is not None:
        cached = lvlm._cached_encodings(images, vision)
        if cached is not None:
            flat = cached
        else:  # the cache's layout cuts and encodes them (Qwen3-VL: deepstack features too)
            layout = lvlm.feature_cache.layout
            pixels = layout.split(vision, sum(len(row) for row in images))
            if pixels is None:
                raise ValueError(f"{lvlm.name}: pixel inputs are not one image_grid_thw an image")
            flat = layout.encode(lvlm.model, pixels, lvlm.device)
    features, sizes, start = [], [], 0
    for count in (len(row) for row in images):
        features.append(flat[start : start + count])
        sizes.append([len(feature) for feature in features[-1]])
        start += count
    sequences = [p + a[:-1] for p, a in zip(ids, answer_ids, strict=True)]
    batch = lvlm._padded(sequences, [len(p) for p in ids], None, left=False)
    positions, _ = inner.get_rope_index(
        batch.input_ids,
        mm_token_type_ids=batch.token_types["mm_token_type_ids"],
        image_grid_thw=None if grids is None else grids.to(lvlm.device),
        attention_mask=batch.attention_mask,
    )
    rows = [positions[:, row, : len(s)] for row, s in enumerate(sequences)]
    return _Window(ids, images, features, sizes, answer_ids, rows)


def _encoder_outputs(features: list[Encoding]) -> dict[str, Any]:
    return encoder_outputs(features) if features else {}


def _row_positions(window: _Window, row: int, start: int, length: int) -> torch.Tensor:
    """Positions of ``length`` tokens of ``row`` from token ``start``: ``(length,)``, or
    ``(3, length)`` for M-RoPE (positions past the row's end repeat its last: padding)."""
    if window.positions is None:
        return torch.arange(start, start + length)
    full = window.positions[row]
    part = full[:, start : start + length]
    if part.shape[1] < length:
        part = torch.cat([part, full[:, -1:].expand(-1, length - part.shape[1])], dim=1)
    return part


def _stack_positions(parts: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """Per-row positions as the model's ``position_ids``: ``(B, T)``, or ``(3, B, T)``."""
    stacked = torch.stack(parts, dim=-2)  # (B, T) or (3, B, T)
    return stacked.to(device)


def _run_prefixes(
    lvlm: HFLVLM,
    window: _Window,
    owners: list[int],
    lengths: list[int],
    batch_size: int,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Key/value states of the prefixes (prefix ``k``: row ``owners[k]``'s first
    ``lengths[k]`` tokens), per layer ``(keys, values)`` of shape ``(K + 1, H, P, D)`` with
    ``P`` the longest prefix; prefix ``k``'s states are ``[k, :, :lengths[k]]``, the rest (and
    row ``K``, for rows without a prefix) is padding that the suffix masks out."""
    states: list[tuple[torch.Tensor, torch.Tensor]] = []
    order = sorted(range(len(owners)), key=lambda k: lengths[k])
    nothing = torch.zeros(0, dtype=torch.long, device=lvlm.device)
    longest = max(lengths, default=0)
    rows_per_batch = MAX_ROWS_PER_BATCH * batch_size
    for start in range(0, len(order), rows_per_batch):
        batch = order[start : start + rows_per_batch]
        rows = [window.ids[owners[k]][: lengths[k]] for k in batch]
        padded = lvlm._padded(rows, [len(r) for r in rows], None, left=False)
        width = padded.input_ids.shape[1]
        features = []
        for k in batch:
            row = owners[k]
            count = _images_before(
                window.sizes[row], window.ids[row], lengths[k], lvlm.image_token_id
            )
            features += window.features[row][:count]
        positions = _stack_positions(
            [_row_positions(window, owners[k], 0, width) for k in batch], lvlm.device
        )
        # Only the states are read: the last layer's MLP and the LM head do no useful work.
        mlp = lvlm._last_mlp
        with only_at_positions(mlp, nothing) if mlp is not None else nullcontext():
            output = lvlm.model(
                input_ids=padded.input_ids,
                attention_mask=padded.attention_mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
                **padded.token_types,
                **_encoder_outputs(features),
            )
        layers = output.past_key_values.layers
        if not states:
            shape = (len(owners) + 1, layers[0].keys.shape[1], longest, layers[0].keys.shape[3])
            states = [
                (layer.keys.new_zeros(shape), layer.keys.new_zeros(shape)) for layer in layers
            ]
        slots = torch.tensor(batch)  # CPU indices: the layers may sit on several devices
        for (keys, values), layer in zip(states, layers, strict=True):
            keys[slots, :, :width] = layer.keys
            values[slots, :, :width] = layer.values
    return states


def _suffix_inputs(
    lvlm: HFLVLM,
    window: _Window,
    batch: list[int],
    lengths: list[int],
    slots: list[int],
    states: list[tuple[torch.Tensor, torch.Tensor]],
) -> Any:
    """``ScoreInputs`` of the rows ``batch`` run after their prefixes (row ``i``'s is
    ``states[:][slots[i]]``, ``lengths[i]`` long; 0: none): suffix ids, the past states cut
    to the batch's longest prefix, a 4D mask, positions continuing from each prefix."""
    from transformers import DynamicCache

    suffix_ids, features = [], []
    for row in batch:
        length = lengths[row]
        count = _images_before(window.sizes[row], window.ids[row], length, lvlm.image_token_id)
        suffix_ids.append(window.ids[row][length:])
        features += window.features[row][count:]
    inputs = lvlm._assemble(
        suffix_ids,
        _encoder_outputs(features),
        [[] for _ in batch],
        None,
        [window.answers[row] for row in batch],
        trim_last=True,
    )
    width = inputs.input_ids.shape[1]
    extra = dict(inputs.extra)
    extra["position_ids"] = _stack_positions(
        [_row_positions(window, row, lengths[row], width) for row in batch], lvlm.device
    )
    longest = max(lengths[row] for row in batch)
    if longest == 0:
        return replace(inputs, extra=extra)
    index = torch.tensor([slots[row] for row in batch])  # CPU, as in ``_run_prefixes``
    past = [(keys[index, :, :longest], values[index, :, :longest]) for keys, values in states]
    # (B, 1, S, P + S): a row sees its own prefix, then its suffix causally, never padding.
    dtype = lvlm.model.dtype
    prefix_mask = torch.arange(longest) < torch.tensor([lengths[row] for row in batch])[:, None]
    suffix_mask = inputs.attention_mask.bool().cpu()
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    allowed = torch.cat(
        [
            prefix_mask[:, None, :].expand(-1, width, -1),
            causal[None] & suffix_mask[:, None, :],
        ],
        dim=2,
    )[:, None]
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    extra["past_key_values"] = DynamicCache(ddp_cache_data=past)
    extra["use_cache"] = True  # the layers read (and extend) the given cache only with it on
    return replace(inputs, attention_mask=mask.to(lvlm.device), extra=extra)


def _suffix_batches(
    suffix_lengths: list[int], whole_lengths: list[int], batch_size: int
) -> list[list[int]]:
    """Rows (by suffix length, shortest first) cut into batches of at most as many token slots
    as ``batch_size`` of the window's longest whole prompts would take (suffixes are shorter,
    so a batch holds more of them, up to ``MAX_ROWS_PER_BATCH x batch_size``)."""
    budget = batch_size * max(whole_lengths)
    rows_cap = MAX_ROWS_PER_BATCH * batch_size
    batches: list[list[int]] = []
    current: list[int] = []
    for row in sorted(range(len(suffix_lengths)), key=lambda r: suffix_lengths[r]):
        if current and (
            (len(current) + 1) * suffix_lengths[row] > budget or len(current) == rows_cap
        ):
            batches.append(current)
            current = []
        current.append(row)
    if current:
        batches.append(current)
    return batches


def score_with_shared_prefixes(
    lvlm: HFLVLM,
    prompts: Sequence[ICLPrompt],
    answers: Sequence[str],
    batch_size: int,
    progress: bool,
) -> list[ScoreResult]:
    """``lvlm.score`` through shared prefixes (module docstring); results in the prompts'
    order. The call's prompts are grouped by demonstrations, then cut into windows of
    ``WINDOW_BATCHES x batch_size`` prompts (what bounds the states held at once)."""
    order = grouped_by_demos(prompts)
    results: list[ScoreResult | None] = [None] * len(prompts)
    size = batch_size * WINDOW_BATCHES
    bar = tqdm(
        total=len(prompts), desc="scoring", unit="prompt",
        disable=not progress or len(prompts) <= batch_size,
    )  # fmt: skip
    for first in range(0, len(order), size):
        members = order[first : first + size]
        rows = [prompts[i] for i in members]
        window = _encode_window(lvlm, rows, [answers[i] for i in members], first)
        lengths = prefix_lengths(lvlm, rows, window)
        # One prefix per demonstration set (not per token ids: two demonstrations can differ
        # in their images alone, which share the placeholder's id).
        owner_of: dict[tuple, int] = {}
        owners: list[int] = []
        for row, length in enumerate(lengths):
            if length and rows[row].demos not in owner_of:
                owner_of[rows[row].demos] = len(owners)
                owners.append(row)
        states = _run_prefixes(lvlm, window, owners, [lengths[r] for r in owners], batch_size)
        slots = [
            owner_of[rows[row].demos] if length else len(owners)
            for row, length in enumerate(lengths)
        ]
        answers_run = [len(a) - 1 for a in window.answers]  # the last answer token is left out
        batches = _suffix_batches(
            [len(ids) - n + a for ids, n, a in zip(window.ids, lengths, answers_run, strict=True)],
            [len(ids) + a for ids, a in zip(window.ids, answers_run, strict=True)],
            batch_size,
        )
        for batch in batches:
            inputs = _suffix_inputs(lvlm, window, batch, lengths, slots, states)
            scores = lvlm._score_from_inputs(inputs, prune_last_mlp=True)
            for row, result in zip(batch, scores, strict=True):
                results[members[row]] = result
            bar.update(len(batch))
    bar.close()
    return [result for result in results if result is not None]
