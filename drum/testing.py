"""Test doubles: a rule-driven fake LVLM, a recording proxy around a real one, a fake embedder.

All three are deterministic (no randomness, no weights) and record what reaches them, so
tests and benchmarks can assert how often a cache or pipeline called the model and with what:

* ``FakeLVLM`` replies and scores by rules: a named policy (``"first_demo"``: the first
  demonstration's answer) or any callable; its fingerprint is a constructor argument.
* ``SpyLVLM`` forwards every batch to another ``LVLM`` (a tiny real model, typically) and
  records it; it can fail on its n-th call, as a killed run would stop.
* ``FakeEmbedder`` maps each text and each image's pixels to a unit vector through SHA-256:
  equal content, equal vector; different content, different vector.

Like lm-evaluation-harness's dummy model: nothing here is used by the library itself.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from abc import abstractmethod
from collections.abc import Callable, Sequence

import numpy as np

from drum.data.images import ImageInput, load_image
from drum.embed.base import Embedder, l2_normalize
from drum.lvlm.base import LVLM, ScoreResult, WrappedLVLM
from drum.lvlm.prompt import ICLPrompt

ReplyRule = Callable[[ICLPrompt], str]
ScoreRule = Callable[[ICLPrompt, str], ScoreResult]

# What the demonstration policies reply to a prompt without demonstrations.
NO_DEMO_REPLY = "nothing"


def _unit_interval(*parts: str) -> float:
    """A number in ``[0, 1)`` fixed by ``parts`` (SHA-256: the same in every process)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return struct.unpack("<Q", digest[:8])[0] / 2**64


def _prompt_key(prompt: ICLPrompt) -> str:
    """The prompt's turns (image paths, texts, answers) as one string."""
    turns = (*prompt.demos, prompt.query)
    return "\x1e".join(
        "\x1d".join([*(str(image) for image in turn.images), turn.text, str(turn.answer)])
        for turn in turns
    )


def hash_score(prompt: ICLPrompt, answer: str) -> ScoreResult:
    """A pseudo-random log-likelihood fixed by ``(prompt, answer)``: one token per word of
    ``answer``, each with a log-probability in ``(-5, 0]``."""
    tokens = max(1, len(answer.split()))
    mean = -5.0 * _unit_interval(_prompt_key(prompt), answer)
    return ScoreResult(sum=mean * tokens, mean=mean, tokens=tokens)


def demo_match_score(prompt: ICLPrompt, answer: str) -> ScoreResult:
    """Log-likelihood that grows with the demonstrations answering ``answer``: mean
    ``-2 / (1 + n)`` with ``n`` such demonstrations, one token per word of ``answer``."""
    tokens = max(1, len(answer.split()))
    matches = sum(demo.answer == answer for demo in prompt.demos)
    mean = -2.0 / (1 + matches)
    return ScoreResult(sum=mean * tokens, mean=mean, tokens=tokens)


def first_demo_answer(prompt: ICLPrompt, no_demo_reply: str = NO_DEMO_REPLY) -> str:
    """The answer of the prompt's first demonstration (``no_demo_reply`` without any)."""
    return str(prompt.demos[0].answer) if prompt.demos else no_demo_reply


def last_demo_answer(prompt: ICLPrompt, no_demo_reply: str = NO_DEMO_REPLY) -> str:
    """The answer of the prompt's last demonstration (``no_demo_reply`` without any)."""
    return str(prompt.demos[-1].answer) if prompt.demos else no_demo_reply


SCORE_POLICIES: dict[str, ScoreRule] = {"hash": hash_score, "demo_match": demo_match_score}
REPLY_POLICIES: dict[str, Callable[[ICLPrompt, str], str]] = {
    "first_demo": first_demo_answer,
    "last_demo": last_demo_answer,
}


class _RecordingLVLM(LVLM):
    """Records every ``score`` and ``generate`` call, then hands the batch to a subclass."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.calls = 0
        self.scored: list[tuple[ICLPrompt, str]] = []
        self.generated: list[ICLPrompt] = []
        self.fail_on_call = fail_on_call

    @property
    def demo_counts(self) -> list[int]:
        """The number of demonstrations of every prompt passed to ``generate``, in order."""
        return [len(prompt.demos) for prompt in self.generated]

    def _count_call(self) -> None:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("killed")

    def score(
        self,
        prompts: Sequence[ICLPrompt],
        answers: Sequence[str],
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[ScoreResult]:
        self._count_call()
        self.scored.extend(zip(prompts, answers, strict=True))
        return self._score(prompts, answers, batch_size, progress)

    def generate(
        self,
        prompts: Sequence[ICLPrompt],
        max_new_tokens: int = 8,
        batch_size: int = 32,
        progress: bool = False,
    ) -> list[str]:
        self._count_call()
        self.generated.extend(prompts)
        return self._generate(prompts, max_new_tokens, batch_size, progress)

    @abstractmethod
    def _score(
        self, prompts: Sequence[ICLPrompt], answers: Sequence[str], batch_size: int, progress: bool
    ) -> list[ScoreResult]:
        """The results ``score`` returns for this (already recorded) batch."""

    @abstractmethod
    def _generate(
        self, prompts: Sequence[ICLPrompt], max_new_tokens: int, batch_size: int, progress: bool
    ) -> list[str]:
        """The replies ``generate`` returns for this (already recorded) batch."""


class FakeLVLM(_RecordingLVLM):
    """An LVLM that replies and scores by rules, recording every call.

    Args:
        reply: ``"first_demo"`` (``first_demo_answer``; with ``similar_last`` order the k-th
            most similar demonstration), ``"last_demo"`` (``last_demo_answer``) or a callable
            ``prompt -> reply``. ``max_new_tokens`` is ignored.
        score: ``"hash"`` (``hash_score``: pseudo-random, fixed by prompt and answer),
            ``"demo_match"`` (``demo_match_score``) or a callable
            ``(prompt, answer) -> ScoreResult``.
        fingerprint: what ``fingerprint`` returns.
        no_demo_reply: the named reply policies' reply to a prompt without demonstrations.
        fail_on_call: make the n-th call (1-based; ``score`` and ``generate`` count together)
            raise ``RuntimeError("killed")`` before it records anything.

    Records: ``calls`` (both methods), ``scored`` ((prompt, answer) pairs), ``generated``
    (prompts), ``demo_counts`` (demonstrations per generated prompt).
    """

    def __init__(
        self,
        reply: ReplyRule | str = "first_demo",
        score: ScoreRule | str = "hash",
        fingerprint: str = "fake-lvlm",
        no_demo_reply: str = NO_DEMO_REPLY,
        fail_on_call: int | None = None,
    ) -> None:
        super().__init__(fail_on_call)
        if isinstance(reply, str):
            if reply not in REPLY_POLICIES:
                raise ValueError(
                    f"unknown reply policy {reply!r}; choose one of {list(REPLY_POLICIES)}"
                )
            reply = functools.partial(REPLY_POLICIES[reply], no_demo_reply=no_demo_reply)
        if isinstance(score, str):
            if score not in SCORE_POLICIES:
                raise ValueError(
                    f"unknown score policy {score!r}; choose one of {list(SCORE_POLICIES)}"
                )
            score = SCORE_POLICIES[score]
        self._reply: ReplyRule = reply
        self._score_rule: ScoreRule = score
        self._fingerprint = fingerprint

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def _score(
        self, prompts: Sequence[ICLPrompt], answers: Sequence[str], batch_size: int, progress: bool
    ) -> list[ScoreResult]:
        return [self._score_rule(p, a) for p, a in zip(prompts, answers, strict=True)]

    def _generate(
        self, prompts: Sequence[ICLPrompt], max_new_tokens: int, batch_size: int, progress: bool
    ) -> list[str]:
        return [self._reply(prompt) for prompt in prompts]


class SpyLVLM(_RecordingLVLM, WrappedLVLM):
    """Forwards every call, batch for batch, to ``inner``, recording it like ``FakeLVLM``;
    what evaluation records of a model (``name``, context length, truncation counts) is
    ``inner``'s (``WrappedLVLM``).

    ``fingerprint`` defaults to ``inner``'s (give another to stand for another model);
    ``fail_on_call`` makes the n-th call (1-based) raise ``RuntimeError("killed")`` before
    it records or forwards anything, as a killed run would stop.
    """

    def __init__(
        self, inner: LVLM, fingerprint: str | None = None, fail_on_call: int | None = None
    ) -> None:
        super().__init__(fail_on_call)
        self.inner = self.base = inner
        self._fingerprint = fingerprint

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint if self._fingerprint is None else self._fingerprint

    def _score(
        self, prompts: Sequence[ICLPrompt], answers: Sequence[str], batch_size: int, progress: bool
    ) -> list[ScoreResult]:
        return self.inner.score(prompts, answers, batch_size=batch_size, progress=progress)

    def _generate(
        self, prompts: Sequence[ICLPrompt], max_new_tokens: int, batch_size: int, progress: bool
    ) -> list[str]:
        return self.inner.generate(prompts, max_new_tokens, batch_size, progress)


def _hash_vector(dim: int, *parts: bytes) -> np.ndarray:
    """``dim`` numbers in ``[-1, 1)`` fixed by ``parts`` (SHA-256 in counter mode)."""
    seed = hashlib.sha256(b"\x1f".join(parts)).digest()
    stream = b""
    counter = 0
    while len(stream) < 8 * dim:
        stream += hashlib.sha256(seed + counter.to_bytes(4, "little")).digest()
        counter += 1
    values = np.frombuffer(stream[: 8 * dim], dtype="<u8").astype(np.float64) / 2**64
    return 2.0 * values - 1.0


class FakeEmbedder(Embedder):
    """Unit vectors from SHA-256 of each text, or of each image's RGB pixels and size.

    Equal content gives equal vectors (an image file re-saved with other bytes but the same
    pixels included); any change gives another vector. Texts and images hash apart, so the
    two modalities share no meaningful geometry.

    Records: ``calls`` (``embed_images`` and ``embed_texts`` together), ``texts_seen`` and
    ``images_seen`` (every input, in order, duplicates included).
    """

    def __init__(self, dim: int = 4, fingerprint: str = "fake-embedder") -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self._dim = dim
        self._fingerprint = fingerprint
        self.calls = 0
        self.texts_seen: list[str] = []
        self.images_seen: list[ImageInput] = []

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def embed_images(
        self, images: Sequence[ImageInput], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        self.calls += 1
        self.images_seen.extend(images)
        rows = []
        for image in images:
            rgb = load_image(image)
            rows.append(_hash_vector(self._dim, b"image", repr(rgb.size).encode(), rgb.tobytes()))
        return l2_normalize(np.array(rows, dtype=np.float32).reshape(-1, self._dim))

    def embed_texts(
        self, texts: Sequence[str], batch_size: int = 256, progress: bool = False
    ) -> np.ndarray:
        self.calls += 1
        self.texts_seen.extend(texts)
        rows = [_hash_vector(self._dim, b"text", text.encode()) for text in texts]
        return l2_normalize(np.array(rows, dtype=np.float32).reshape(-1, self._dim))


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rank_entry(rank: int, world_size: int, port: int, function: Callable, args: tuple) -> None:
    import os

    import torch
    import torch.distributed as dist

    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    try:
        function(*args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def spawn_ranks(function: Callable, world_size: int, *args: object) -> None:
    """Run ``function(*args)`` in ``world_size`` fresh processes set up as ``torchrun`` sets
    up its workers (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` / ``PORT`` on a
    free local port), so ``DistContext.from_env()`` forms a gloo group of them. ``function``
    must be importable (module level). One process failing kills the others and raises
    (``torch.multiprocessing.spawn``)."""
    import torch.multiprocessing as mp

    port = _free_port()
    mp.spawn(_rank_entry, args=(world_size, port, function, args), nprocs=world_size, join=True)
