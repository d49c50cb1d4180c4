"""The built-in LVLM: its training path equals the processor path, episodes are well formed,
a short training run saves a model that ``HFLVLM`` loads, and the shipped model reads
interleaved prompts (scores by hand, batched equals one at a time) and takes layer hooks with
one span per image even where two images' tokens are adjacent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from drum.builtin.assets import ASSETS_DIR
from drum.builtin.lvlm.episodes import EpisodeSampler, scene_from_meta
from drum.builtin.lvlm.model import (
    BuiltinLVLMArchitecture,
    build_builtin_lvlm,
    visual_tokens_per_image,
)
from drum.builtin.lvlm.train import (
    CARD_NAME,
    IGNORE,
    BuiltinLVLMConfig,
    EpisodeEncoder,
    _shot_count,
    episode_logits_and_loss,
    lvlm_checkpointer,
    train_builtin_lvlm,
    vision_features,
)
from drum.data import read_examples
from drum.data.images import load_image
from drum.lvlm.hf import HFLVLM
from drum.lvlm.hooks import VisualPositions
from drum.lvlm.prompt import ICLPrompt, Turn
from tests.killed import killed_after_checkpoint
from tests.lvlm.prompts import interleaved_prompts

TINY = BuiltinLVLMArchitecture(hidden=32, layers=2, heads=2, intermediate=64)


def _short_run(batch_size: int) -> BuiltinLVLMConfig:
    """6 steps, probes at steps 3 and 6, checkpoints every 2 steps."""
    return BuiltinLVLMConfig(
        architecture=TINY,
        batch_size=batch_size,
        max_steps=6,
        min_steps=0,
        eval_every=3,
        probe_episodes=4,
        checkpoint_every=2,
        demo_ramp_steps=2,
    )


@pytest.fixture(scope="module")
def built(tiny_clip_dir: Path):
    torch.manual_seed(0)
    return build_builtin_lvlm(TINY, tiny_clip_dir)


@pytest.fixture(scope="module")
def pool(tiny_world: Path):
    return read_examples(tiny_world / "vqa" / "pool.jsonl")


def _sampler(pool) -> EpisodeSampler:
    return EpisodeSampler([scene_from_meta(e.meta) for e in pool])


def _prompt_of(episode, pool) -> ICLPrompt:
    turns = [Turn.of((pool[s.image].image,), s.text, s.answer) for s in episode.demos]
    query = episode.query
    return ICLPrompt(tuple(turns), Turn.of((pool[query.image].image,), query.text))


def test_training_tokens_equal_the_chat_template_and_processor(built, pool) -> None:
    model, processor = built
    encoder = EpisodeEncoder(processor, visual_tokens_per_image(model))
    rng = np.random.default_rng(0)
    for task in ("vqa", "caption", "classification"):
        episode = _sampler(pool).probe(rng, task, ("match", "miss", "random"))
        ids, labels, images = encoder.encode(episode, query_answer=False)
        text = processor.apply_chat_template(
            _prompt_of(episode, pool).to_messages(), add_generation_prompt=True, tokenize=False
        )
        from PIL import Image

        pil = [Image.open(pool[row].image).convert("RGB") for row in images]
        expected = processor(text=[text], images=pil, return_tensors="pt")["input_ids"][0].tolist()
        assert ids == expected
        assert all(
            label == IGNORE or label == token for label, token in zip(labels, ids, strict=True)
        )


def test_training_forward_equals_the_model_forward(built, pool) -> None:
    model, processor = built
    model.eval()
    encoder = EpisodeEncoder(processor, visual_tokens_per_image(model))
    pixels = processor.image_processor(
        images=[__import__("PIL.Image").Image.open(e.image).convert("RGB") for e in pool],
        return_tensors="pt",
    )["pixel_values"]
    features = vision_features(model, pixels)
    episode = _sampler(pool).probe(np.random.default_rng(1), "vqa", ("match", "miss"))
    ids, labels, rows = encoder.encode(episode)
    with torch.no_grad():
        logits, loss, _ = episode_logits_and_loss(model, features, [(ids, labels, rows)], 0)
        direct = model(
            input_ids=torch.tensor([ids]), pixel_values=pixels[rows], labels=torch.tensor([labels])
        )
    torch.testing.assert_close(logits, direct.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(loss, direct.loss, atol=1e-5, rtol=1e-5)


def test_episode_demo_kinds(pool) -> None:
    sampler = _sampler(pool)
    rng = np.random.default_rng(2)
    for task in ("vqa", "caption", "classification"):
        for _ in range(20):
            episode = sampler.probe(rng, task, ("match", "miss", "miss"))
            revealing = [sampler._reveals(task, d, episode.query) for d in episode.demos]
            assert revealing.count(True) == 1  # exactly one demo reveals the answer words
            if task == "vqa":  # every demo asks the query's question type
                assert (
                    len(
                        {
                            d.text.split()[:2] == episode.query.text.split()[:2]
                            for d in episode.demos
                        }
                    )
                    >= 1
                )


def test_episodes_use_fresh_conventions(pool) -> None:
    sampler = _sampler(pool)
    rng = np.random.default_rng(3)
    answers = {sampler.probe(rng, "classification", ()).query.answer for _ in range(30)}
    assert len(answers) > 5  # the same classes get other label words in other episodes


def test_shot_curriculum() -> None:
    config = BuiltinLVLMConfig(max_demos=8, demo_ramp_steps=100)
    rng = np.random.default_rng(0)
    early = [_shot_count(rng, 0, config) for _ in range(50)]
    late = [_shot_count(rng, 500, config) for _ in range(500)]
    assert set(early) == {1}
    assert min(late) == 0 and max(late) == 8


def test_short_training_saves_a_loadable_model_and_is_skipped_when_current(
    tiny_world: Path, tiny_clip_dir: Path, tmp_path: Path
) -> None:
    config = _short_run(batch_size=8)
    out = train_builtin_lvlm(tiny_world, tiny_clip_dir, tmp_path / "lvlm", config, progress=False)
    card = json.loads((out / CARD_NAME).read_text())
    assert card["steps"] == 6 and len(card["history"]) == 2
    assert card["trainable_parameters"] < card["parameters"]  # the vision tower stays frozen
    assert not (tmp_path / ".lvlm.checkpoint").exists()
    stamp = (out / CARD_NAME).stat().st_mtime_ns
    train_builtin_lvlm(tiny_world, tiny_clip_dir, tmp_path / "lvlm", config, progress=False)
    assert (out / CARD_NAME).stat().st_mtime_ns == stamp

    lvlm = HFLVLM(out)
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    prompt = ICLPrompt(
        (Turn.of((pool[0].image,), pool[0].text, pool[0].answer),),
        Turn.of((pool[1].image,), pool[1].text),
    )
    (reply,) = lvlm.generate([prompt], max_new_tokens=2)
    assert isinstance(reply, str)


def test_training_resumes_from_a_checkpoint(
    tiny_world: Path, tiny_clip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _short_run(batch_size=4)
    uninterrupted = train_builtin_lvlm(
        tiny_world, tiny_clip_dir, tmp_path / "a", config, progress=False
    )

    # Killed right after the step-4 checkpoint.
    with pytest.raises(KeyboardInterrupt), killed_after_checkpoint(2):
        train_builtin_lvlm(tiny_world, tiny_clip_dir, tmp_path / "b", config, progress=False)
    assert [p.name for p in (tmp_path / ".b.checkpoint").iterdir()] == ["step_4"]
    resumed = train_builtin_lvlm(tiny_world, tiny_clip_dir, tmp_path / "b", config, progress=False)

    from safetensors.torch import load_file

    a, b = load_file(uninterrupted / "model.safetensors"), load_file(resumed / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5)


def test_the_shipped_lvlm_is_current_for_its_world_and_embedder(
    shipped_world: Path, tiny_clip_dir: Path
) -> None:
    """Its card, written before ``Checkpointer``, still identifies its run."""
    lvlm_dir, embedder_dir = ASSETS_DIR / "lvlm", ASSETS_DIR / "embedder"
    recorded = json.loads((lvlm_dir / CARD_NAME).read_text())["identity"]["config"]
    architecture = BuiltinLVLMArchitecture(**recorded.pop("architecture"))
    config = BuiltinLVLMConfig(architecture=architecture, **recorded)
    assert lvlm_checkpointer(lvlm_dir, shipped_world, embedder_dir, config).finished()
    assert not lvlm_checkpointer(lvlm_dir, shipped_world, tiny_clip_dir, config).finished()


def test_plain_share_and_task_mix(pool) -> None:
    sampler = _sampler(pool)
    rng = np.random.default_rng(4)
    plain = [sampler.sample(rng, 2, {"vqa": 1.0}, plain_share=1.0) for _ in range(20)]
    assert all(e.task == "vqa" for e in plain)
    english = {"small", "large", "one", "two", "three", "red", "green", "blue", "yellow"}
    english |= {"magenta", "cyan", "circle", "square", "triangle", "cross", "diamond"}
    assert all(e.query.answer in english for e in plain)
    nonsense = [sampler.sample(rng, 2, {"vqa": 1.0}, plain_share=0.0) for _ in range(20)]
    assert not any(e.query.answer in english for e in nonsense)


@pytest.fixture(scope="module")
def shipped() -> HFLVLM:
    return HFLVLM(ASSETS_DIR / "lvlm")


@pytest.fixture(scope="module")
def interleaved(pool) -> tuple[list[ICLPrompt], list[str]]:
    """Two images between text; three in one turn (two adjacent: their tokens form one run);
    three across a demo and the query."""
    return interleaved_prompts(pool)


def _by_hand(lvlm: HFLVLM, prompt: ICLPrompt, answer: str) -> float:
    """``sum_t log p(a_t | prompt, a_<t)`` from one plain forward over the unpadded
    prompt + answer, rendered by the processor directly."""
    text = lvlm.processor.apply_chat_template(
        prompt.to_messages(), add_generation_prompt=True, tokenize=False
    )
    images = [load_image(path) for path in prompt.images]
    inputs = lvlm.processor(text=[text], images=[images], return_tensors="pt")
    prompt_ids = inputs["input_ids"][0].tolist()
    answer_ids = lvlm.tokenizer(answer, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + answer_ids])
    with torch.no_grad():
        logits = lvlm.model(input_ids=ids, pixel_values=inputs["pixel_values"]).logits
    log_probs = logits[0].float().log_softmax(-1)
    return sum(float(log_probs[len(prompt_ids) - 1 + i, t]) for i, t in enumerate(answer_ids))


def test_shipped_lvlm_renders_interleaved_prompts_in_order(shipped: HFLVLM, interleaved) -> None:
    (two, three, across), _ = interleaved
    assert shipped.render(two) == f"[BOS] one <image> two <image> {two.query.parts[-1].text} answer"
    assert shipped.render(three) == (
        f"[BOS] one <image> two <image> <image> {three.query.parts[-1].text} answer"
    )
    demo = across.demos[0]
    assert shipped.render(across) == (
        f"[BOS] <image> small <image> answer {demo.answer} [EOS]"
        f" large <image> {across.query.parts[-1].text} answer"
    )


def test_shipped_lvlm_scores_interleaved_prompts_by_hand_and_batched(
    shipped: HFLVLM, interleaved
) -> None:
    prompts, answers = interleaved
    batched = shipped.score(prompts, answers)
    for prompt, answer, result in zip(prompts, answers, batched, strict=True):
        (single,) = shipped.score([prompt], [answer])
        assert result.sum == pytest.approx(single.sum, abs=1e-4)
        assert result.sum == pytest.approx(_by_hand(shipped, prompt, answer), abs=1e-4)
    replies = shipped.generate(prompts, max_new_tokens=3)
    assert replies == [shipped.generate([p], max_new_tokens=3)[0] for p in prompts]


def test_shipped_lvlm_hooks_see_one_span_per_image_and_act_in_both_paths(
    shipped: HFLVLM, interleaved
) -> None:
    prompts, answers = interleaved
    # The output of layer L/2 - 1, i.e. what enters layer L/2 (VPG-C's insertion point): by the
    # output of layer L/2 itself this trained model has already read the images into the text.
    layer = shipped.model.config.text_config.num_hidden_layers // 2 - 1
    n = visual_tokens_per_image(shipped.model)
    scores = shipped.score(prompts, answers)
    replies = shipped.generate(prompts, max_new_tokens=3)
    seen: list[VisualPositions] = []

    def record(hidden: torch.Tensor, visual: VisualPositions) -> torch.Tensor:
        seen.append(visual)
        return hidden + torch.zeros_like(hidden)

    with shipped.layer_hook(layer, record):
        assert shipped.score(prompts, answers) == scores
        assert shipped.generate(prompts, max_new_tokens=3) == replies
    for visual in seen:  # scoring (right padding), then generation (left padding)
        for row, prompt in enumerate(prompts):
            spans = visual.spans[row]
            assert len(spans) == len(prompt.images)
            assert all(end - start == n for start, end in spans)
            covered = [i for start, end in spans for i in range(start, end)]
            assert visual.mask[row].nonzero().flatten().tolist() == covered
    # The second prompt's two adjacent images: one run of 2n tokens, cut into two spans.
    (_, second, third) = seen[0].spans[1]
    assert second[1] == third[0]

    # A constant vector at the visual positions (a seeded direction of norm ~1000): a scalar
    # shift moves too little through this trained model's RMSNorm to change its replies.
    direction = 100.0 * torch.randn(
        shipped.model.config.text_config.hidden_size, generator=torch.Generator().manual_seed(0)
    )

    def shift(hidden: torch.Tensor, visual: VisualPositions) -> torch.Tensor:
        return hidden + direction * visual.mask.unsqueeze(-1).to(hidden.dtype)

    with shipped.layer_hook(layer, shift):
        shifted = shipped.score(prompts, answers)
        shifted_replies = shipped.generate(prompts, max_new_tokens=3)
    assert all(abs(s.sum - b.sum) > 1e-3 for s, b in zip(shifted, scores, strict=True))
    assert shifted_replies != replies
