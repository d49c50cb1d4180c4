"""Retrieval strategies: how a query and a pool example are compared.

Every similarity strategy is a pair of maps from an example's (image, text) embeddings to one
unit vector, one map for queries and one for the pool, so that a single inner product in a
FAISS index gives its score:

=========  ===========================================  ==========================================
name       query vector                                 pool vector / resulting score
=========  ===========================================  ==========================================
image      ``i_q``                                      ``i_p``:  ``cos(i_q, i_p)``
text       ``t_q``                                      ``t_p``:  ``cos(t_q, t_p)``
cross      ``[i_q, t_q] / sqrt 2``                      ``[t_p, i_p] / sqrt 2``:
                                                        ``(cos(i_q, t_p) + cos(t_q, i_p)) / 2``
concat     ``[sqrt(w) i_q, sqrt(1-w) t_q]``             ``[sqrt(w) i_p, sqrt(1-w) t_p]``:
                                                        ``w cos(i_q, i_p) + (1-w) cos(t_q, t_p)``
joint      ``j_q``                                      ``j_p``:  ``cos(j_q, j_p)``
=========  ===========================================  ==========================================

``concat`` is DRUM's proposal (the L2-normalised image and text embeddings concatenated).
``joint`` compares one embedding of each example's images and text read together
(``j = JointEmbedder.embed_examples``, e.g. an LVLM's last-token state, ``drum.embed.joint``)
instead of two separate ones; its built-in spec uses the embedder named ``"joint"``.
``random`` and ``fixed`` ignore similarity.

A strategy is data, a ``StrategySpec``: a name, how vectors combine (one of the rows above, or
``random`` / ``fixed``) and which embedder serves it, by name. Built-ins are registered under
their own names, ``drum`` among them: ``concat`` over the embedder named ``"drum"`` (the one
DRUM fine-tuned). A new retriever needs no new code, only a spec, e.g.
``StrategySpec("drum-run2", "concat", embedder="drum2")`` evaluated with
``{"default": clip, "drum2": run2_embedder}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from drum.registry import Registry

SIMILARITY_COMBINES = ("image", "text", "cross", "concat", "joint")
RULES = ("random", "fixed")  # demonstrations chosen without comparing embeddings
COMBINES = (*RULES, *SIMILARITY_COMBINES)
DEFAULT_EMBEDDER = "default"
JOINT_EMBEDDER = "joint"  # the embedder name of the built-in ``joint`` strategy
ORDERS = ("similar_last", "similar_first", "random")


@dataclass(frozen=True)
class StrategySpec:
    """A retrieval strategy: a name -> (how vectors combine, which embedder).

    Attributes:
        name: the name result rows and tables carry.
        combine: one of ``COMBINES``: a vector combination (module docstring) or a rule.
        embedder: the name of the embedder in the evaluation's embedder mapping (ignored by
            ``random`` / ``fixed``).
        image_weight: ``w`` of ``concat`` for this strategy alone; ``None`` takes the
            evaluation's (``RetrievalConfig.image_weight``).
        train_seed: the seed of the training run that produced the embedder, reported as the
            row's ``seed`` so that the runs of one strategy name average like seeds; ``None``
            for one deterministic retriever.
    """

    name: str
    combine: str
    embedder: str = DEFAULT_EMBEDDER
    image_weight: float | None = None
    train_seed: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a strategy needs a name")
        if self.combine not in COMBINES:
            raise ValueError(
                f"strategy {self.name!r}: unknown combine {self.combine!r}; choose one of "
                f"{COMBINES}"
            )
        if not self.embedder:
            raise ValueError(f"strategy {self.name!r}: the embedder name must not be empty")
        if self.image_weight is not None and not 0.0 <= self.image_weight <= 1.0:
            raise ValueError(
                f"strategy {self.name!r}: image_weight must be in [0, 1], got {self.image_weight}"
            )
        if self.train_seed is not None and not self.uses_similarity:
            raise ValueError(
                f"strategy {self.name!r}: {self.combine!r} uses no trained embedder, so no "
                "train_seed; its seeds are the evaluation's"
            )

    @property
    def uses_similarity(self) -> bool:
        return self.combine in SIMILARITY_COMBINES

    @property
    def parts(self) -> tuple[str, ...]:
        """What ``ExampleEmbeddings.compute`` must compute for this strategy (``parts=``):
        ``("joint",)``, ``("image", "text")``, or nothing for ``random`` / ``fixed``."""
        if not self.uses_similarity:
            return ()
        return ("joint",) if self.combine == "joint" else ("image", "text")


STRATEGY_REGISTRY = Registry("strategy")
"""Strategy name -> ``StrategySpec``; fill it with ``register_strategy``."""


def register_strategy(spec: StrategySpec) -> StrategySpec:
    """Make ``spec`` available by its name (``RetrievalConfig(strategy=name)``,
    ``ICLEvalConfig(strategies=(name, ...))``); another spec under a taken name is an error."""
    STRATEGY_REGISTRY.register(spec.name, spec)
    return spec


_BUILTINS = (
    *(StrategySpec(name, name) for name in COMBINES if name != "joint"),
    StrategySpec("drum", "concat", embedder="drum"),
    StrategySpec("joint", "joint", embedder=JOINT_EMBEDDER),
)
for _spec in _BUILTINS:
    register_strategy(_spec)

# The built-ins, in order: random, fixed, image, text, cross, concat, drum, joint.
STRATEGIES = tuple(spec.name for spec in _BUILTINS)


def get_strategy(strategy: str | StrategySpec) -> StrategySpec:
    """``strategy`` itself when it is a spec, else the spec registered under that name.

    Raises:
        drum.registry.UnknownNameError: (a ``ValueError``) no strategy has that name.
    """
    if isinstance(strategy, StrategySpec):
        return strategy
    return STRATEGY_REGISTRY.get(strategy)


@dataclass(frozen=True)
class RetrievalConfig:
    """How demonstrations are chosen and ordered.

    Attributes:
        strategy: a registered strategy name (``STRATEGIES`` and any ``register_strategy``
            added) or a ``StrategySpec``.
        k: demonstrations per query (the shot count).
        order: prompt order; ``similar_last`` (default, as RICES) puts the best match next to
            the query.
        image_weight: ``w`` of the ``concat`` score; a spec's own ``image_weight`` replaces it.
        exclude_self: never use a pool example with the query's id or identical content.
        seed: for ``random``, ``fixed`` and ``order="random"``.

    Example::

        RetrievalConfig(strategy="concat", k=4, image_weight=0.5)
        RetrievalConfig(strategy=StrategySpec("mine", "concat", embedder="mine"), k=8)
    """

    strategy: str | StrategySpec = "concat"
    k: int = 4
    order: str = "similar_last"
    image_weight: float = 0.5
    exclude_self: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        spec = get_strategy(self.strategy)
        if spec.image_weight is not None:
            object.__setattr__(self, "image_weight", spec.image_weight)
        if self.k < 0:
            raise ValueError(f"k must be >= 0, got {self.k}")
        if self.order not in ORDERS:
            raise ValueError(f"unknown order {self.order!r}; choose one of {ORDERS}")
        if not 0.0 <= self.image_weight <= 1.0:
            raise ValueError(f"image_weight must be in [0, 1], got {self.image_weight}")

    @property
    def spec(self) -> StrategySpec:
        return get_strategy(self.strategy)

    @property
    def uses_similarity(self) -> bool:
        return self.spec.uses_similarity


def query_vectors(
    config: RetrievalConfig,
    image: np.ndarray,
    text: np.ndarray,
    joint: np.ndarray | None = None,
) -> np.ndarray:
    """The unit vectors that represent queries under ``config.strategy``'s combination
    (``joint``: the queries' joint embeddings, which only ``joint`` reads)."""
    return _combine(config, image, text, joint, side="query")


def pool_vectors(
    config: RetrievalConfig,
    image: np.ndarray,
    text: np.ndarray,
    joint: np.ndarray | None = None,
) -> np.ndarray:
    """The unit vectors that represent pool examples under ``config.strategy``'s combination
    (``joint``: the pool's joint embeddings, which only ``joint`` reads)."""
    return _combine(config, image, text, joint, side="pool")


def _combine(
    config: RetrievalConfig,
    image: np.ndarray,
    text: np.ndarray,
    joint: np.ndarray | None,
    side: str,
) -> np.ndarray:
    spec = config.spec
    if spec.combine == "joint":
        if joint is None:
            raise ValueError(
                f"strategy {spec.name!r} compares joint embeddings, which were not computed "
                "(ExampleEmbeddings.compute with parts=('joint',) and a JointEmbedder)"
            )
        return np.ascontiguousarray(joint, dtype=np.float32)
    if spec.uses_similarity and (image.shape[1] == 0 or text.shape[1] == 0) and len(image):
        raise ValueError(
            f"strategy {spec.name!r} compares image and text embeddings, which were not "
            "computed (ExampleEmbeddings.compute with parts=('image', 'text'))"
        )
    if spec.combine == "image":
        combined = image
    elif spec.combine == "text":
        combined = text
    elif spec.combine == "cross":
        pair = (image, text) if side == "query" else (text, image)
        combined = np.concatenate(pair, axis=1) / math.sqrt(2.0)
    elif spec.combine == "concat":
        w = config.image_weight
        combined = np.concatenate([math.sqrt(w) * image, math.sqrt(1.0 - w) * text], axis=1)
    else:
        raise ValueError(f"strategy {spec.name!r} does not compare embeddings")
    return np.ascontiguousarray(combined, dtype=np.float32)
