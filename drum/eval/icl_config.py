"""``ICLEvalConfig``: what an in-context-learning evaluation runs (strategies x shot counts x
seeds) and how (prompt order, batching, bootstrap CIs); ``drum.eval.icl`` runs it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

from drum.retrieve.strategies import ORDERS, RULES, RetrievalConfig, StrategySpec, get_strategy

ZERO_SHOT = "zero-shot"
SEEDED_STRATEGIES = RULES  # combinations whose demonstrations depend on the seed

# How corpus metrics get their CI: "rescore" recomputes the metric on every resample (exact,
# slow: CIDEr-D rebuilds its document frequencies each time); "fixed_statistics" bootstraps the
# per-example scores of metrics whose corpus score is their mean, with the corpus statistics
# held at their full-corpus values (the usual approximation; BLEU is still rescored).
CORPUS_CI_MODES = ("rescore", "fixed_statistics")


@dataclass(frozen=True)
class ICLEvalConfig:
    """What to evaluate: strategies x shot counts x seeds, and how.

    Attributes:
        strategies: ``StrategySpec`` objects or registered names (``drum.retrieve.strategies``),
            stored as specs; may be empty when ``shots`` is only ``(0,)``.
        shots: demonstration counts; 0 gives the zero-shot row. Stored sorted, without repeats.
        seeds: ``RetrievalConfig.seed`` values for the seeded strategies (``random``,
            ``fixed``, and all of them when ``order="random"``).
        order: prompt order of the demonstrations.
        image_weight: ``w`` of ``concat`` (and ``drum``) unless a spec sets its own.
        batch_size: prompts per ``LVLM.generate`` batch.
        max_queries: evaluate only the first ``max_queries`` queries of each task.
        bootstrap_resamples: resamples for mean-of-examples metrics.
        corpus_bootstrap_resamples: resamples for corpus metrics (CIDEr-D, BLEU-4), each of
            which rescores the whole resampled corpus.
        corpus_ci: one of ``CORPUS_CI_MODES``.

    Example::

        config = ICLEvalConfig(strategies=("random", "concat", "drum"), shots=(0, 1, 4))
        config.required_embedders  # ("default", "drum"): the embedders run_icl_eval needs
    """

    strategies: tuple[StrategySpec, ...]
    shots: tuple[int, ...] = (0, 1, 2, 4, 8)
    seeds: tuple[int, ...] = (0,)
    order: str = "similar_last"
    image_weight: float = 0.5
    batch_size: int = 32
    max_queries: int | None = None
    bootstrap_resamples: int = 1000
    corpus_bootstrap_resamples: int = 200
    corpus_ci: str = "rescore"

    def __post_init__(self) -> None:
        strategies = tuple(get_strategy(strategy) for strategy in self.strategies)
        shots, seeds = tuple(self.shots), tuple(self.seeds)
        # One name may come with several train seeds (runs of one retriever), never twice alone.
        keys = [(spec.name, spec.train_seed) for spec in strategies]
        if len(set(keys)) != len(keys):
            raise ValueError(f"strategies repeat: {[spec.name for spec in strategies]}")
        if ZERO_SHOT in {spec.name for spec in strategies}:
            raise ValueError(f"{ZERO_SHOT!r} is not a strategy: put 0 in shots instead")
        for spec in strategies:
            # Validates image_weight with the retriever's own checks.
            RetrievalConfig(strategy=spec, image_weight=self.image_weight)
        if self.order not in ORDERS:
            raise ValueError(f"unknown order {self.order!r}; choose one of {ORDERS}")
        if self.order == "random" and any(spec.train_seed is not None for spec in strategies):
            raise ValueError("order='random' seeds every strategy: no train_seed in the specs")
        if not shots:
            raise ValueError("shots must hold at least one shot count")
        if any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in shots):
            raise ValueError(f"shots must be integers >= 0, got {shots}")
        if max(shots) > 0 and not strategies:
            raise ValueError("shots > 0 need at least one strategy")
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be non-empty and distinct, got {seeds}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_queries is not None and self.max_queries < 1:
            raise ValueError(f"max_queries must be >= 1 or None, got {self.max_queries}")
        if self.corpus_ci not in CORPUS_CI_MODES:
            raise ValueError(f"corpus_ci must be one of {CORPUS_CI_MODES}, got {self.corpus_ci!r}")
        if self.bootstrap_resamples < 1 or self.corpus_bootstrap_resamples < 1:
            raise ValueError("bootstrap resample counts must be >= 1")
        object.__setattr__(self, "strategies", strategies)
        object.__setattr__(self, "shots", tuple(sorted(set(shots))))
        object.__setattr__(self, "seeds", seeds)

    @property
    def max_shots(self) -> int:
        return max(self.shots)

    @property
    def demo_shots(self) -> tuple[int, ...]:
        """The shot counts that show demonstrations (all but 0)."""
        return tuple(k for k in self.shots if k > 0)

    @property
    def required_embedders(self) -> tuple[str, ...]:
        """Names of the embedders the similarity strategies compare with, in first-use order
        (none without demonstrations)."""
        if not self.demo_shots:
            return ()
        names = [spec.embedder for spec in self.strategies if spec.uses_similarity]
        return tuple(dict.fromkeys(names))

    def embedder_parts(self, name: str) -> tuple[str, ...]:
        """What ``ExampleEmbeddings.compute`` computes with the embedder ``name``: the union of
        its strategies' ``StrategySpec.parts``, in ``PARTS`` order."""
        wanted = {
            part
            for spec in self.strategies
            if spec.uses_similarity and spec.embedder == name
            for part in spec.parts
        }
        return tuple(part for part in ("image", "text", "joint") if part in wanted)

    def is_seeded(self, strategy: str | StrategySpec) -> bool:
        """Whether ``strategy``'s demonstrations depend on the seed (one row per seed)."""
        return get_strategy(strategy).combine in SEEDED_STRATEGIES or self.order == "random"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``strategies`` as ``{name, combine, embedder, image_weight,
        train_seed}`` records."""
        return {key: list(v) if isinstance(v, tuple) else v for key, v in asdict(self).items()}


def check_embedders(config: ICLEvalConfig, embedders: Collection[str]) -> None:
    """Raise ``ValueError`` when a strategy's embedder is not among ``embedders`` (names)."""
    for name in config.required_embedders:
        if name not in embedders:
            users = [
                spec.name
                for spec in config.strategies
                if spec.uses_similarity and spec.embedder == name
            ]
            given = ", ".join(repr(n) for n in embedders) or "none"
            raise ValueError(
                f"strategies {users} compare embeddings and need the embedder {name!r} "
                f"(embedders given: {given})"
            )
