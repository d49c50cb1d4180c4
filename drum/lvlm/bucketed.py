"""``HFLVLM.score``'s path for LLaVA-style models with the image-feature cache on and no layer
hook (where prompts do not share prefixes, ``drum.lvlm.prefix``): each window of
``BUCKET_WINDOW`` batches is encoded in one go from the cached image encodings, then batched by
length so that each batch pads little. Scores equal the plain path's up to float rounding (a
row's score never depends on its batch-mates: right padding, causal attention)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from drum.lvlm.base import ScoreResult
from drum.lvlm.encoding import encoder_outputs
from drum.lvlm.prompt import ICLPrompt

if TYPE_CHECKING:
    from drum.lvlm.hf import HFLVLM

# Batches encoded together and sorted by length (a window bounds the image encodings held).
BUCKET_WINDOW = 4


def score_bucketed(
    lvlm: HFLVLM,
    prompts: Sequence[ICLPrompt],
    answers: Sequence[str],
    batch_size: int,
    progress: bool,
) -> list[ScoreResult]:
    """``score`` with less padding and no repeated work: every window of ``BUCKET_WINDOW x
    batch_size`` prompts is rendered, tokenised and has its images looked up (or encoded)
    once (``HFLVLM._encode_rows``), then sorted by length (prompt + answer tokens) and cut into
    batches, so each batch pads to a length close to its rows' own (a feedback run's
    zero-shot prompts, about half as long as its one-shot ones, share batches). Results are
    put back in the prompts' order. Windows bound the memory held in image encodings."""
    results: list[ScoreResult | None] = [None] * len(prompts)
    window = batch_size * BUCKET_WINDOW
    bar = tqdm(
        total=len(prompts), desc="scoring", unit="prompt",
        disable=not progress or len(prompts) <= batch_size,
    )  # fmt: skip
    for first in range(0, len(prompts), window):
        rows = list(prompts[first : first + window])
        answer_ids = [lvlm._answer_ids(answer) for answer in answers[first : first + window]]
        ids, features, images, _ = lvlm._encoded_to_fit(
            lvlm._encode_rows, rows, [len(a) for a in answer_ids], first, "answer"
        )
        order = sorted(range(len(rows)), key=lambda i: len(ids[i]) + len(answer_ids[i]))
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            flat = [feature for i in batch for feature in features[i]]
            inputs = lvlm._assemble(
                [ids[i] for i in batch],
                encoder_outputs(flat) if flat else {},
                [images[i] for i in batch],
                None,  # no layer hook: no visual positions
                [answer_ids[i] for i in batch],
                trim_last=True,
            )
            scores = lvlm._score_from_inputs(inputs, prune_last_mlp=True)
            for i, result in zip(batch, scores, strict=True):
                results[first + i] = result
            bar.update(len(batch))
    bar.close()
    return [result for result in results if result is not None]
