"""LVLMEmbedder: the last token's final hidden state of an interleaved (images, text) input, on a
tiny random Qwen2-VL and on the built-in world LVLM (a LLaVA)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from drum.builtin.assets import ASSETS_DIR
from drum.data.example import Example
from drum.data.jsonl import read_examples
from drum.embed.cache import EmbeddingCache
from drum.embed.example_embeddings import ExampleEmbeddings
from drum.embed.hf import HFDualEncoder
from drum.embed.joint import LVLMEmbedder
from drum.lvlm.hf import HFLVLM
from drum.utils.model_path import ModelPathError

BUILTIN_LVLM = ASSETS_DIR / "lvlm"


@pytest.fixture(scope="session")
def tiny_qwen2_vl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.lvlm.tiny_lvlms import build_tiny_qwen2_vl

    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny_qwen2_vl")).path


@pytest.fixture(scope="module", params=["qwen2_vl", "builtin"])
def embedder(request: pytest.FixtureRequest, tiny_qwen2_vl_dir: Path) -> LVLMEmbedder:
    return LVLMEmbedder(tiny_qwen2_vl_dir if request.param == "qwen2_vl" else BUILTIN_LVLM)


@pytest.fixture(scope="module")
def pool(tiny_world: Path) -> list[Example]:
    return read_examples(tiny_world / "vqa" / "pool.jsonl")


def _varied(pool: list[Example]) -> list[Example]:
    """Examples of different token lengths (so a batch pads), one of them with two images."""
    texts = ["what colour", "how many small red things are there in the picture", "shape"]
    rows = [replace(pool[i], id=f"v{i}", text=text) for i, text in enumerate(texts)]
    rows.append(replace(pool[3], id="two", images=(pool[3].image, pool[4].image), text="which"))
    return rows


def test_shapes_and_unit_norm(embedder: LVLMEmbedder, pool: list[Example]) -> None:
    hidden = embedder.lvlm.model.config.get_text_config().hidden_size
    assert embedder.dim == hidden
    outputs = [
        embedder.embed_examples(pool[:5]),
        embedder.embed_pairs([e.images for e in pool[:5]], [e.text for e in pool[:5]]),
        embedder.embed_images([e.image for e in pool[:5]]),
        embedder.embed_texts([e.text for e in pool[:5]]),
    ]
    for vectors in outputs:
        assert vectors.shape == (5, hidden) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert embedder.embed_examples([]).shape == (0, hidden)


def test_batched_equals_one_at_a_time(embedder: LVLMEmbedder, pool: list[Example]) -> None:
    rows = _varied(pool)
    batched = embedder.embed_examples(rows, batch_size=len(rows))
    alone = np.concatenate([embedder.embed_examples([row]) for row in rows])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    texts = [row.text for row in rows]
    np.testing.assert_allclose(
        embedder.embed_texts(texts, batch_size=4),
        np.concatenate([embedder.embed_texts([text]) for text in texts]),
        atol=1e-5,
    )


def test_deterministic_across_calls_and_loads(embedder: LVLMEmbedder, pool: list[Example]) -> None:
    first = embedder.embed_examples(pool[:4])
    np.testing.assert_array_equal(embedder.embed_examples(pool[:4]), first)
    again = LVLMEmbedder(embedder.name)
    assert again.fingerprint == embedder.fingerprint
    np.testing.assert_array_equal(again.embed_examples(pool[:4]), first)


def _by_hand(lvlm: HFLVLM, example: Example, position: int = -1) -> np.ndarray:
    """The model called directly on the processor's output for one input: the final hidden
    state at ``position`` (the last token by default), L2-normalised."""
    from drum.embed.joint import LVLMEmbedder as _Embedder

    prompt = _Embedder(lvlm).prompt(example.images, example.text)
    images = [[Image.open(path).convert("RGB") for path in example.images]]
    batch = lvlm.processor(text=[lvlm.render(prompt)], images=images, return_tensors="pt")
    inputs = {key: value for key, value in batch.items() if key != "text_replacement_offsets"}
    if lvlm._token_types:  # the per-token image mask (Qwen2-VL's M-RoPE): 1 at image tokens
        inputs[lvlm._token_types] = (inputs["input_ids"] == lvlm.image_token_id).long()
    with torch.no_grad():
        hidden = lvlm.model(**inputs, output_hidden_states=True).hidden_states[-1]
    return torch.nn.functional.normalize(hidden[0, position], dim=-1).numpy()


def test_reads_the_last_tokens_final_state(embedder: LVLMEmbedder, pool: list[Example]) -> None:
    """Each row of a right-padded batch is the last real token's state, not a padding
    column's, nor an earlier token's."""
    rows = _varied(pool)[:3]
    batched = embedder.embed_examples(rows, batch_size=3)
    lengths = [len(embedder.lvlm._encode([embedder.prompt(r.images, r.text)])[0][0]) for r in rows]
    assert len(set(lengths)) == 3  # the batch pads two of its rows
    for row, vector in zip(rows, batched, strict=True):
        np.testing.assert_allclose(vector, _by_hand(embedder.lvlm, row), atol=1e-5)
        assert not np.allclose(vector, _by_hand(embedder.lvlm, row, position=-2), atol=1e-3)
    # The shortest row, read at the batch's last (padding) column, would be another vector.
    short = int(np.argmin(lengths))
    inputs = embedder.lvlm.score_inputs(
        [embedder.prompt(r.images, r.text) for r in rows], [[] for _ in rows]
    )
    assert inputs.attention_mask[short, -1] == 0  # right padding
    with torch.no_grad():
        hidden = embedder.lvlm.forward(
            inputs.input_ids, inputs.attention_mask, output_hidden_states=True, **inputs.extra
        ).hidden_states[-1]
    padded = torch.nn.functional.normalize(hidden[short, -1], dim=-1).numpy()
    assert not np.allclose(batched[short], padded, atol=1e-3)


def test_depends_on_both_the_image_and_the_text(
    embedder: LVLMEmbedder, pool: list[Example]
) -> None:
    base = pool[0]
    other_image = replace(base, id="b", images=pool[1].images)
    other_text = replace(base, id="c", text=pool[1].text + " ?")
    vectors = embedder.embed_examples([base, other_image, other_text])
    assert not np.allclose(vectors[0], vectors[1], atol=1e-4)
    assert not np.allclose(vectors[0], vectors[2], atol=1e-4)


def test_instruction_is_part_of_the_input_and_the_fingerprint(
    embedder: LVLMEmbedder, pool: list[Example]
) -> None:
    instructed = LVLMEmbedder(embedder.lvlm, instruction="what")
    assert instructed.fingerprint != embedder.fingerprint
    assert instructed.fingerprint.startswith("joint-") and embedder.lvlm.fingerprint in (
        instructed.fingerprint
    )
    assert not np.allclose(
        instructed.embed_examples(pool[:2]), embedder.embed_examples(pool[:2]), atol=1e-4
    )
    assert instructed.prompt([], "colour").query.text == "what colour"


def test_fingerprint_tracks_the_weights(tiny_qwen2_vl_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_qwen2_vl_dir, copy)
    assert LVLMEmbedder(copy).fingerprint == LVLMEmbedder(tiny_qwen2_vl_dir).fingerprint
    lvlm = HFLVLM(copy)
    with torch.no_grad():
        lvlm.model.get_input_embeddings().weight.mul_(2.0)
    lvlm.model.save_pretrained(copy)
    assert LVLMEmbedder(copy).fingerprint != LVLMEmbedder(tiny_qwen2_vl_dir).fingerprint


def test_cache_serves_joint_rows_by_content(
    embedder: LVLMEmbedder, pool: list[Example], tmp_path: Path
) -> None:
    cache = EmbeddingCache(tmp_path / "cache")
    first = cache.embed_examples(embedder, pool[:6])
    assert (cache.hits, cache.misses) == (0, 6)
    np.testing.assert_array_equal(first, embedder.embed_examples(pool[:6]))
    renamed = [replace(example, id=f"x{i}") for i, example in enumerate(pool[:6])]
    np.testing.assert_array_equal(cache.embed_examples(embedder, renamed), first)
    assert (cache.hits, cache.misses) == (6, 6)
    swapped = replace(pool[0], id="s", images=pool[1].images)
    cache.embed_examples(embedder, [swapped])  # same text, other image: a new pair
    assert cache.misses == 7


def test_example_embeddings_compute_only_the_parts_asked(
    embedder: LVLMEmbedder, pool: list[Example]
) -> None:
    joint = ExampleEmbeddings.compute(pool[:4], embedder, parts=("joint",))
    assert joint.joint is not None and joint.joint.shape == (4, embedder.dim)
    assert joint.image.shape == (4, 0) and not joint.has("image") and joint.has("joint")
    both = ExampleEmbeddings.compute(pool[:4], embedder, parts=("image", "text", "joint"))
    assert both.image.shape == (4, embedder.dim)
    np.testing.assert_array_equal(both.joint, joint.joint)
    assert ExampleEmbeddings.compute(pool[:4], embedder).joint is None


def test_errors_for_bad_input(
    embedder: LVLMEmbedder, pool: list[Example], tiny_clip_dir: Path
) -> None:
    with pytest.raises(TypeError, match="embeds images by path"):
        embedder.embed_images([Image.new("RGB", (32, 32))])
    with pytest.raises(ValueError, match="2 image lists but 1 texts"):
        embedder.embed_pairs([[pool[0].image], [pool[1].image]], ["a"])
    with pytest.raises(ValueError, match="nothing to embed"):
        embedder.embed_pairs([[]], [""])
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        embedder.embed_examples(pool[:2], batch_size=0)
    with pytest.raises(ValueError, match="joint embeddings need a JointEmbedder"):
        ExampleEmbeddings.compute(pool[:2], HFDualEncoder(tiny_clip_dir), parts=("joint",))
    with pytest.raises(ValueError, match="parts must be a non-empty subset"):
        ExampleEmbeddings.compute(pool[:2], embedder, parts=("audio",))
    with pytest.raises(ModelPathError, match="no-such-model"):
        LVLMEmbedder(Path("no-such-model"))
    with pytest.raises(ModelPathError, match="no chat template"):  # a dual encoder, no LVLM
        LVLMEmbedder(tiny_clip_dir)
