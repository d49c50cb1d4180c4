"""The test doubles of ``drum.testing``: rules, determinism, what they record, failing on cue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drum.data.example import Example
from drum.embed.cache import EmbeddingCache
from drum.feedback import score_feedback
from drum.lvlm.base import ScoreResult
from drum.lvlm.prompt import ICLPrompt, build_prompt
from drum.testing import (
    NO_DEMO_REPLY,
    FakeEmbedder,
    FakeLVLM,
    SpyLVLM,
    demo_match_score,
    hash_score,
)


def _example(name: str, answer: str, text: str = "what colour?") -> Example:
    return Example(name, (Path(f"/images/{name}.png"),), text, (answer,), "vqa")


RED, BLUE, GREEN = _example("r", "red"), _example("b", "blue"), _example("g", "green")
QUERY = _example("q", "red", "which colour is it?")


def _prompts() -> list[ICLPrompt]:
    return [build_prompt(demos, QUERY) for demos in ([], [RED], [BLUE, RED], [GREEN, BLUE, RED])]


# ------------------------------------------------------------------------------- FakeLVLM
def test_first_demo_reply_and_what_generate_records() -> None:
    lvlm = FakeLVLM()
    prompts = _prompts()
    assert lvlm.generate(prompts) == [NO_DEMO_REPLY, "red", "blue", "green"]
    assert lvlm.generate(prompts[1:2]) == ["red"]
    assert lvlm.calls == 2
    assert lvlm.generated == [*prompts, prompts[1]]
    assert lvlm.demo_counts == [0, 1, 2, 3, 1]
    assert lvlm.scored == []
    assert lvlm.fingerprint == "fake-lvlm"


def test_other_reply_rules_and_fingerprint() -> None:
    prompts = _prompts()
    last = FakeLVLM("last_demo", no_demo_reply="?", fingerprint="last")
    assert last.generate(prompts) == ["?", "red", "red", "red"]
    assert last.fingerprint == "last"
    echo = FakeLVLM(lambda prompt: prompt.query.text.upper())
    assert echo.generate(prompts[:2]) == ["WHICH COLOUR IS IT?"] * 2
    with pytest.raises(ValueError, match="unknown reply policy 'psychic'"):
        FakeLVLM("psychic")
    with pytest.raises(ValueError, match="unknown score policy"):
        FakeLVLM(score="psychic")


def test_hash_score_is_a_deterministic_function_of_prompt_and_answer() -> None:
    prompts = _prompts()
    lvlm = FakeLVLM()
    results = lvlm.score(prompts, ["red"] * 4)
    assert lvlm.scored == [(p, "red") for p in prompts] and lvlm.calls == 1
    # Another instance, one prompt at a time: the same numbers.
    assert [FakeLVLM().score([p], ["red"])[0] for p in prompts] == results
    assert results == [hash_score(p, "red") for p in prompts]
    assert len({r.mean for r in results}) == 4  # prompts tell apart
    assert hash_score(prompts[0], "blue") != results[0]  # answers too
    for result in results:
        assert -5.0 < result.mean <= 0.0 and result.tokens == 1
    two_words = hash_score(prompts[0], "dark red")
    assert two_words.tokens == 2 and two_words.sum == pytest.approx(2 * two_words.mean)


def test_demo_match_and_custom_score_rules() -> None:
    prompts = _prompts()
    means = [r.mean for r in FakeLVLM(score="demo_match").score(prompts, ["blue"] * 4)]
    assert means == [-2.0, -2.0, -1.0, -1.0]  # a "blue" demo doubles the likelihood
    assert demo_match_score(prompts[3], "red").mean == -1.0

    def rule(prompt: ICLPrompt, answer: str) -> ScoreResult:
        return ScoreResult(sum=-float(len(prompt.demos)), mean=-1.0, tokens=len(prompt.demos))

    assert [r.sum for r in FakeLVLM(score=rule).score(prompts, ["x"] * 4)] == [0, -1, -2, -3]


def test_fail_on_call_stops_that_call_before_it_records() -> None:
    lvlm = FakeLVLM(fail_on_call=2)
    prompts = _prompts()
    lvlm.score(prompts[:1], ["red"])
    with pytest.raises(RuntimeError, match="killed"):
        lvlm.generate(prompts)
    assert lvlm.calls == 2 and lvlm.generated == [] and len(lvlm.scored) == 1
    assert lvlm.generate(prompts[:1]) == [NO_DEMO_REPLY]  # later calls work again


def test_feedback_of_the_demo_match_rule(tmp_path: Path) -> None:
    # Through the library: s(c) = log p(a | c, q) - log p(a | q) is 1 for a demo that answers
    # the query's answer and 0 otherwise.
    lvlm = FakeLVLM(score="demo_match")
    (feedback,) = score_feedback(lvlm, [QUERY], {QUERY.id: [BLUE, RED, GREEN]}, progress=False)
    assert feedback.zero_shot == -2.0
    assert feedback.scores == (0.0, 1.0, 0.0)
    assert len(lvlm.scored) == 4


# -------------------------------------------------------------------------------- SpyLVLM
def test_spy_forwards_batches_and_records_them() -> None:
    inner = FakeLVLM(fingerprint="inner")
    spy = SpyLVLM(inner)
    prompts = _prompts()
    assert spy.score(prompts, ["red"] * 4, batch_size=2) == [hash_score(p, "red") for p in prompts]
    assert spy.generate(prompts) == [NO_DEMO_REPLY, "red", "blue", "green"]
    assert spy.calls == inner.calls == 2  # each batch forwarded whole, once
    assert spy.scored == inner.scored and spy.generated == inner.generated
    assert spy.demo_counts == [0, 1, 2, 3]
    assert spy.fingerprint == "inner"
    assert SpyLVLM(inner, fingerprint="other").fingerprint == "other"


def test_spy_reports_what_evaluation_records_of_its_inner_model() -> None:
    inner = FakeLVLM()
    inner.name, inner.context_length, inner.truncated_prompts = "inner-model", 77, 3
    spy = SpyLVLM(inner)
    assert (spy.name, spy.context_length, spy.truncated_prompts) == ("inner-model", 77, 3)


def test_spy_fail_on_call_forwards_nothing() -> None:
    inner = FakeLVLM()
    spy = SpyLVLM(inner, fail_on_call=1)
    with pytest.raises(RuntimeError, match="killed"):
        spy.score(_prompts(), ["red"] * 4)
    assert spy.scored == [] and inner.calls == 0
    spy.score(_prompts()[:1], ["red"])
    assert spy.calls == 2 and inner.calls == 1


# --------------------------------------------------------------------------- FakeEmbedder
def test_text_vectors_unit_deterministic_and_content_keyed() -> None:
    embedder = FakeEmbedder()
    vectors = embedder.embed_texts(["a cat", "a dog", "a cat"])
    assert vectors.shape == (3, 4) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert not np.allclose(vectors[0], vectors[1])
    np.testing.assert_array_equal(FakeEmbedder().embed_texts(["a dog"])[0], vectors[1])
    assert embedder.calls == 1 and embedder.texts_seen == ["a cat", "a dog", "a cat"]
    assert embedder.images_seen == []
    assert FakeEmbedder(dim=7).embed_texts(["x"]).shape == (1, 7)
    assert embedder.embed_texts([]).shape == (0, 4)
    with pytest.raises(ValueError, match="dim"):
        FakeEmbedder(dim=0)


def test_image_vectors_follow_the_pixels(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    image = Image.new("RGB", (8, 8), (10, 20, 30))
    image.save(path)
    embedder = FakeEmbedder(dim=5, fingerprint="fp")
    from_path, from_memory, rgba = embedder.embed_images([path, image, image.convert("RGBA")])
    np.testing.assert_array_equal(from_path, from_memory)  # same pixels, same vector
    np.testing.assert_array_equal(from_path, rgba)  # compared as RGB
    Image.new("RGB", (8, 8), (11, 20, 30)).save(path)
    (changed,) = embedder.embed_images([path])
    assert not np.allclose(changed, from_path)
    # A text never collides with an image by construction (separate hash domains).
    assert not np.allclose(embedder.embed_texts([""])[0], from_path)
    assert embedder.calls == 3 and len(embedder.images_seen) == 4
    assert (embedder.dim, embedder.fingerprint) == (5, "fp")


def test_fake_embedder_under_the_embedding_cache(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    cache = EmbeddingCache(tmp_path)
    first = cache.embed_texts(embedder, ["one", "two"])
    again = EmbeddingCache(tmp_path).embed_texts(embedder, ["two", "one", "three"])
    np.testing.assert_array_equal(again[:2], first[::-1])
    assert embedder.texts_seen == ["one", "two", "three"]
