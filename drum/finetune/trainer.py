"""Fine-tuning the embedder so that its ``concat`` similarity reproduces the LVLM's ranking.

Each step takes ``batch_size`` ranked lists, samples ``candidates_per_query`` candidates of
each (``drum.finetune.lists.sample_positions``), embeds queries and candidates with the same dual
encoder, and minimises::

    loss = list_weight * L_list(scale * sim(q, c_1..K), relevance)
         + contrastive_weight * CE(scale * sim(q, all candidates of the batch), best of q)

(UDR's objective, ``drum.losses.udr_objective``: a list-wise ranking term plus an in-batch
contrastive term whose positive is the LVLM's top candidate). The loop is
``drum.utils.train_loop``'s: checkpoints at every epoch end hold the model, optimiser and
scheduler; a killed run resumes from the last one and, with the same seed, ends with the same
weights as an uninterrupted run (data order and candidate samples are functions of
``(seed, epoch)``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from drum.data.example import Example
from drum.data.images import load_image
from drum.finetune.config import RetrieverTrainConfig
from drum.finetune.dual_encoder import TrainableDualEncoder
from drum.finetune.lists import RankedList, sample_positions
from drum.losses import RANKING_LOSSES, udr_objective
from drum.utils.checkpoint import Checkpointer
from drum.utils.distributed import DistContext, shard_bounds
from drum.utils.fingerprint import directory_digest
from drum.utils.schedule import adamw_warmup_cosine, clipped_step
from drum.utils.seed import seed_everything
from drum.utils.train_loop import LoopConfig, run_training

CARD_NAME = "drum_retriever.json"


def lists_digest(lists: Sequence[RankedList]) -> str:
    """Identifies the training data (ids and rounded relevance) for resume checks."""
    digest = hashlib.sha256()
    for item in lists:
        digest.update(item.query.id.encode())
        for candidate, relevance in zip(item.candidates, item.relevance, strict=True):
            digest.update(f"|{candidate.id}:{relevance:.6f}".encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


class _Batcher:
    """Vision inputs (computed once per image) and text inputs of examples."""

    def __init__(
        self, encoder: TrainableDualEncoder, examples: Sequence[Example], device: str = "cpu"
    ) -> None:
        self.encoder = encoder
        self.device = torch.device(device)
        unique = {example.image: None for example in examples}
        paths = list(unique)
        chunks = [
            encoder.vision_inputs([load_image(p) for p in paths[start : start + 512]])
            for start in range(0, len(paths), 512)
        ]
        # One tensor per input name (pixel_values; SigLIP 2's mask and patch grid), row per image.
        keys = chunks[0] if chunks else {}
        self.vision = {key: torch.cat([chunk[key] for chunk in chunks]) for key in keys}
        self.row = {path: row for row, path in enumerate(paths)}

    def inputs(
        self, examples: Sequence[Example]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``(vision_inputs, text_inputs)`` of ``examples`` on the training device."""
        rows = [self.row[example.image] for example in examples]
        vision = {key: value[rows].to(self.device) for key, value in self.vision.items()}
        text = self.encoder.text_inputs([example.text for example in examples])
        return vision, {k: v.to(self.device) for k, v in text.items()}


class _EpochDraws:
    """Each step's lists and sampled candidate positions. An epoch's order and samples come
    from a generator of ``(seed, epoch)``: a run resumed at an epoch's start (where the loop
    checkpoints) draws what an uninterrupted run draws, with no generator state to save."""

    def __init__(
        self, lists: Sequence[RankedList], config: RetrieverTrainConfig, steps_per_epoch: int
    ) -> None:
        self.lists, self.config, self.steps_per_epoch = lists, config, steps_per_epoch
        self.rng: np.random.Generator | None = None
        self.order = np.arange(0)

    def __call__(self, index: int) -> tuple[list[RankedList], list[list[int]]]:
        epoch, position = divmod(index, self.steps_per_epoch)
        if position == 0:
            self.rng = np.random.default_rng([self.config.seed, epoch])
            self.order = self.rng.permutation(len(self.lists))
        if self.rng is None:
            raise RuntimeError(f"step {index} is inside an epoch: runs resume at an epoch start")
        size, k, top = self.config.batch_size, self.config.candidates_per_query, self.config.top
        batch = [self.lists[i] for i in self.order[position * size : (position + 1) * size]]
        picks = [sample_positions(len(item.candidates), k, top, self.rng) for item in batch]
        return batch, picks


class _ConcatVectors(torch.nn.Module):
    """The trained computation as one module's ``forward`` (what DDP wraps): examples' inputs
    -> their ``concat`` vectors ``[sqrt(w) i, sqrt(1 - w) t]``."""

    def __init__(self, encoder: TrainableDualEncoder, image_weight: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.image_weight = image_weight

    def forward(
        self, vision: dict[str, torch.Tensor], text: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        image = self.encoder.image_embeddings(vision)
        return self.encoder.concat(image, self.encoder.text_embeddings(text), self.image_weight)


def train_retriever(
    init_dir: str | Path,
    lists: Sequence[RankedList],
    out_dir: str | Path,
    config: RetrieverTrainConfig | None = None,
    progress: bool = True,
    context: DistContext | None = None,
) -> Path:
    """Fine-tune the embedder at ``init_dir`` on ``lists``; save it (with its card) to
    ``out_dir``. Resumes from ``out_dir``'s checkpoint when one of the same run exists.

    With several processes (``context``, by default ``DistContext.from_env()``: the ranks of
    ``torchrun`` / ``accelerate launch``) the model is wrapped in ``DistributedDataParallel``.
    ``config.batch_size`` stays the *global* batch: every rank draws the same batch and the
    same candidate samples (from ``(seed, epoch)``), embeds its contiguous block of the
    batch's queries and their candidates, and gathers every rank's vectors
    (``DistContext.all_gather_rows``: the own block keeps its gradient). Every rank then
    computes the very loss one process computes on the whole batch: the list-wise term over
    each query's own candidates, and the contrastive term whose negatives are the candidates
    of the *global* batch (as DPR / UDR gather them). Rank ``r``'s backward yields
    ``dL/dtheta`` through its own block only, so the objective is ``world_size * L``: DDP's
    average of the ranks' gradients is then ``sum_r dL/dtheta|_r = dL/dtheta``, the
    one-process gradient, and the update (clipping, AdamW, schedule) is the same. Only rank 0
    writes checkpoints and the output; every rank resumes from the same checkpoint.
    """
    config = config or RetrieverTrainConfig()
    context = context or DistContext.from_env()
    init_dir, out_dir = Path(init_dir), Path(out_dir)
    lists = [item for item in lists if len(item.candidates) >= config.candidates_per_query]
    if not lists:
        raise ValueError(
            f"no training list has >= {config.candidates_per_query} candidates to sample"
        )
    identity = {
        "config": config.to_dict(),
        "init_digest": directory_digest(init_dir),
        "lists_digest": lists_digest(lists),
    }
    checkpointer = Checkpointer(out_dir, identity, CARD_NAME)
    # Rank 0 alone looks first (finished() and latest() clean up leftovers in place).
    if context.broadcast_object(checkpointer.finished() if context.is_main else None):
        return out_dir

    seed_everything(config.seed)
    encoder = TrainableDualEncoder.from_pretrained(init_dir)
    trainable = encoder.set_trainable(config.trainable)
    encoder.to(context.device)
    steps_per_epoch = math.ceil(len(lists) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    # AdamW's own default betas (the built-in models train with 0.98).
    optimizer, scheduler = adamw_warmup_cosine(
        trainable, config.lr, config.weight_decay, total_steps, config.warmup_steps, (0.9, 0.999)
    )
    list_loss = RANKING_LOSSES[config.loss]()

    examples = [e for item in lists for e in (item.query, *item.candidates)]
    batcher = _Batcher(encoder, examples, context.device)
    encoder.model.train()
    model: torch.nn.Module = _ConcatVectors(encoder, config.image_weight)
    if context.distributed:
        # find_unused_parameters: CLIP's logit_scale trains but no embedding uses it.
        cuda = torch.device(context.device).type == "cuda"
        model = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[torch.device(context.device).index] if cuda else None,
            find_unused_parameters=True,
        )
    k = config.candidates_per_query
    draws = _EpochDraws(lists, config, steps_per_epoch)

    def step(index: int) -> float:
        batch, picks = draws(index)
        relevance = torch.tensor(
            [[item.relevance[p] for p in ps] for item, ps in zip(batch, picks, strict=True)]
        ).to(context.device)
        # This rank's block of the batch: its queries, then their candidates.
        lo, hi = context.bounds(len(batch))
        sizes = [
            stop - begin
            for begin, stop in (
                shard_bounds(len(batch), rank, context.world_size)
                for rank in range(context.world_size)
            )
        ]
        own = [item.query for item in batch[lo:hi]] + [
            item.candidates[p]
            for item, ps in zip(batch[lo:hi], picks[lo:hi], strict=True)
            for p in ps
        ]
        # A rank whose block of a short last batch is empty still joins DDP's all-reduce:
        # it embeds one query and adds it with weight 0.
        vectors = model(*batcher.inputs(own or [batch[0].query]))
        held = 0.0 * vectors.sum() if not own else 0.0
        vectors = vectors[: len(own)]
        queries = context.all_gather_rows(vectors[: hi - lo], sizes)
        pool = context.all_gather_rows(vectors[hi - lo :], [size * k for size in sizes])
        # (B, K): each query against its own sampled candidates (column 0: the LVLM's best).
        similarity = torch.einsum("bd,bkd->bk", queries, pool.view(len(batch), k, -1))
        loss = udr_objective(
            config.scale * similarity,
            config.scale * queries @ pool.T,  # (B, B*K): against every candidate of the batch
            relevance,
            list_weight=config.list_weight,
            contrastive_weight=config.contrastive_weight,
            list_loss=list_loss,
        ).loss
        clipped_step(context.world_size * loss + held, optimizer, scheduler, trainable)
        return loss.item()

    result = run_training(
        step,
        checkpointer,
        {"model": encoder.model, "optimizer": optimizer, "scheduler": scheduler},
        LoopConfig(
            max_steps=total_steps, checkpoint_every=steps_per_epoch, log_every=steps_per_epoch
        ),
        evaluate=lambda done: {"epoch": done // steps_per_epoch},
        context=context,
        desc="training DRUM retriever",
        progress=progress,
    )

    if context.is_main:
        # Per epoch, the mean loss of its steps (no timings: the output's digest stays a
        # function of the run).
        history = [{"epoch": h["epoch"], "loss": h["loss"]} for h in result.history]
        card = {"examples": len(lists), "history": history}
        with checkpointer.finish(card) as staging:
            encoder.save_pretrained(staging)
    context.barrier()  # the output exists for every rank
    return out_dir
