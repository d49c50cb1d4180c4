"""``LVLM.generate`` split across the ranks of a ``torchrun`` / ``accelerate launch`` job.

``generate_sharded`` cuts the prompts into the batches one process would run
(``batch_size`` from the first prompt) and gives each rank a contiguous block of **whole**
batches (``drum.utils.distributed.block_bounds``). Each rank calls ``LVLM.generate`` once on
its block, which it batches from the block's first prompt, so it runs exactly the batches one
process runs and its greedy replies are the single-process ones. The replies are gathered
(``all_gather_object``, rank order = prompt order) and every rank returns the full list: the
metrics computed from it are the one-process metrics, whatever the number of ranks.

The LVLM's running counts of prompts cut to fit its context (``truncated_prompts``,
``dropped_demos``) are per process; ``counts_over_ranks`` sums a call's increments over the
ranks, so a report states the job's total.
"""

from __future__ import annotations

from collections.abc import Sequence

from drum.lvlm.base import LVLM
from drum.lvlm.prompt import ICLPrompt
from drum.utils.distributed import DistContext, block_bounds


def generate_sharded(
    lvlm: LVLM,
    prompts: Sequence[ICLPrompt],
    max_new_tokens: int,
    batch_size: int,
    context: DistContext | None = None,
    progress: bool = False,
) -> list[str]:
    """``lvlm.generate(prompts, max_new_tokens, batch_size)``, each rank generating its block
    of whole batches; every rank returns every reply, in prompt order."""
    context = context or DistContext()
    if not context.distributed:
        return lvlm.generate(prompts, max_new_tokens, batch_size, progress=progress)
    start, stop = block_bounds(len(prompts), batch_size, context.rank, context.world_size)
    own = (
        lvlm.generate(prompts[start:stop], max_new_tokens, batch_size, progress=progress)
        if stop > start
        else []
    )
    if len(own) != stop - start:
        raise RuntimeError(
            f"rank {context.rank}: the LVLM returned {len(own)} replies to {stop - start} prompts"
        )
    return [reply for block in context.all_gather_object(list(own)) for reply in block]


def counts_over_ranks(
    counts: tuple[int, int] | None, context: DistContext | None = None
) -> tuple[int, int] | None:
    """The sum over ranks of each rank's ``(truncated prompts, dropped demos)`` increments
    (None when the LVLM keeps no such counts). A collective: every rank must call it."""
    context = context or DistContext()
    if not context.distributed:
        return counts
    gathered = context.all_gather_object(counts)
    if any(item is None for item in gathered):
        return None
    return sum(item[0] for item in gathered), sum(item[1] for item in gathered)  # type: ignore[index]
