"""Typed settings of DRUM's retriever training and iterative demonstration mining."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from drum.feedback.scorer import FeedbackConfig
from drum.finetune.dual_encoder import TRAINABLE_MODES
from drum.losses.registry import RANKING_LOSSES

RELEVANCE_SOURCES = ("feedback", "similarity")


@dataclass(frozen=True)
class RetrieverTrainConfig:
    """How the embedder is fine-tuned on ranked candidate lists.

    Attributes:
        loss: list-wise loss (``drum.losses.RANKING_LOSSES``); ``lambda`` is UDR's default.
        list_weight: weight of the list-wise term (UDR: 4).
        contrastive_weight: weight of the in-batch contrastive term whose positive is each
            query's best candidate (UDR: 1; 0 disables it).
        candidates_per_query: candidates sampled per query and step (UDR: 8): ``top`` from the
            top of the LVLM's order, one from the bottom, the rest from the middle.
        top: candidates drawn from the top (the best is always one of them).
        scale: the similarity (a cosine mixture in [-1, 1]) is multiplied by it before the
            losses, as CLIP multiplies by its logit scale.
        image_weight: ``w`` of the ``concat`` score trained and retrieved with (1.0 = images
            only, the "without concatenation" ablation).
        trainable: ``full`` or ``projection`` (``TrainableDualEncoder.set_trainable``).
        epochs, batch_size (queries per step), lr, weight_decay, warmup_steps: the optimiser.
        seed: data order, candidate sampling and initial state.
    """

    loss: str = "lambda"
    list_weight: float = 4.0
    contrastive_weight: float = 1.0
    candidates_per_query: int = 8
    top: int = 2
    scale: float = 20.0
    image_weight: float = 0.5
    trainable: str = "full"
    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in RANKING_LOSSES:  # a registered loss (drum.losses.registry)
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {RANKING_LOSSES.names()}")
        if self.trainable not in TRAINABLE_MODES:
            raise ValueError(f"trainable must be one of {TRAINABLE_MODES}, got {self.trainable!r}")
        if not 0.0 <= self.image_weight <= 1.0:
            raise ValueError(f"image_weight must be in [0, 1], got {self.image_weight}")
        if self.candidates_per_query < 2:
            raise ValueError("candidates_per_query must be >= 2 (a list needs an order)")
        if not 1 <= self.top < self.candidates_per_query:
            raise ValueError("top must be >= 1 and < candidates_per_query")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"RetrieverTrainConfig.{name} must be >= 1")
        if self.lr <= 0 or self.scale <= 0:
            raise ValueError("lr and scale must be > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MiningConfig:
    """Iterative demonstration mining: ``rounds`` of retrieve -> score -> train.

    Attributes:
        rounds: ``R``; round ``r`` retrieves candidates with round ``r - 1``'s embedder.
        queries_per_task: training queries drawn (seeded) from each task's pool.
        relevance: ``feedback`` (the LVLM's re-ranking, DRUM) or ``similarity`` (the
            embedder's own order: the "without LVLM re-ranking" ablation).
        val_queries: validation queries per task for the per-round metrics.
        val_shots: demonstrations per validation query.
        feedback: candidate count and batching of the LVLM scoring.
        train: the fine-tuning recipe of every round.

    Example::

        config = MiningConfig(rounds=2, queries_per_task=300)
        mine(tasks, lvlm, "runs/models/embedder", "runs/drum", config)
    """

    rounds: int = 3
    queries_per_task: int = 600
    relevance: str = "feedback"
    val_queries: int = 300
    val_shots: int = 4
    feedback: FeedbackConfig = field(default_factory=lambda: FeedbackConfig(candidates=30))
    train: RetrieverTrainConfig = field(default_factory=RetrieverTrainConfig)

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.queries_per_task < 1 or self.val_queries < 1:
            raise ValueError("rounds, queries_per_task and val_queries must be >= 1")
        if self.relevance not in RELEVANCE_SOURCES:
            raise ValueError(f"relevance must be one of {RELEVANCE_SOURCES}")
        if self.feedback.candidates < self.train.candidates_per_query:
            raise ValueError("feedback.candidates must be >= train.candidates_per_query")
        if self.val_shots < 1:
            raise ValueError("val_shots must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MiningConfig:
        return cls(
            **{
                **data,
                "feedback": FeedbackConfig(**data["feedback"]),
                "train": RetrieverTrainConfig(**data["train"]),
            }
        )
