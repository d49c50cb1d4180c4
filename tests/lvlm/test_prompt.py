"""Prompts as data: ``build_prompt`` keeps today's images-then-text messages, interleaved turns
emit their parts in order, and malformed turns are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from drum.data.example import Example
from drum.lvlm.prompt import ICLPrompt, ImagePart, PromptTemplate, TextPart, Turn, build_prompt

A, B, C = Path("/img/a.png"), Path("/img/b.png"), Path("/img/c.png")


def _example(images: tuple[Path, ...], text: str, answer: str) -> Example:
    return Example(id=text, task="vqa", images=images, text=text, answers=(answer,))


def test_build_prompt_messages_are_todays_images_then_text() -> None:
    demos = [_example((A, B), "what is it", "red"), _example((), "no image", "blue")]
    query = _example((C,), "and this", "green")
    template = PromptTemplate(user="Q: {text}", answer="A: {answer}")
    # Written out by hand: the messages every prompt rendered to before turns had parts.
    expected = [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "image"},
                {"type": "text", "text": "Q: what is it"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "A: red"}]},
        {"role": "user", "content": [{"type": "text", "text": "Q: no image"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A: blue"}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q: and this"}]},
    ]
    prompt = build_prompt(demos, query, template)
    assert prompt.to_messages() == expected
    assert prompt.images == [A, B, C]
    assert prompt.demos[0].text == "Q: what is it" and prompt.demos[0].images == (A, B)
    assert prompt.query.answer is None


def test_interleaved_turn_emits_its_parts_in_order() -> None:
    turn = Turn(
        (TextPart("image 1:"), ImagePart(B), TextPart("image 2:"), ImagePart(A), TextPart("which")),
        answer="first",
    )
    query = Turn((ImagePart(C), TextPart("this"), TextPart("one"), ImagePart(A)))
    prompt = ICLPrompt((turn,), query)
    assert prompt.to_messages() == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "image 1:"},
                {"type": "image"},
                {"type": "text", "text": "image 2:"},
                {"type": "image"},
                {"type": "text", "text": "which"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "first"}]},
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": "this"},
                {"type": "text", "text": "one"},
                {"type": "image"},
            ],
        },
    ]
    # Images in order of appearance across the prompt: what the processor receives.
    assert prompt.images == [B, A, C, A]
    assert turn.text == "image 1: image 2: which"
    assert query.images == (C, A) and query.text == "this one"


def test_turn_of_is_images_then_text() -> None:
    turn = Turn.of([A, B], "what", answer="red")
    assert turn == Turn((ImagePart(A), ImagePart(B), TextPart("what")), "red")


def test_malformed_turns_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one part"):
        Turn(())
    # The former Turn(images, text) call: paths are not parts.
    with pytest.raises(TypeError, match=r"Turn\.of"):
        Turn((A,), "what")  # type: ignore[arg-type]


def test_an_image_part_given_a_str_holds_a_path() -> None:
    part = ImagePart("images/a.png")  # type: ignore[arg-type]
    assert part.path == Path("images/a.png") and isinstance(part.path, Path)
    path = Path("images/b.png")
    assert ImagePart(path).path is path  # a Path is kept as it is
    assert Turn.of(["images/c.png"], "what").images == (Path("images/c.png"),)  # type: ignore[list-item]


def test_grouped_by_demos_puts_each_demonstration_sets_prompts_together(tiny_world: Path) -> None:
    from drum.data import read_examples
    from drum.lvlm.prompt import grouped_by_demos

    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    a, b = pool[10], pool[11]
    prompts = [
        build_prompt(demos, query) for query in pool[:3] for demos in ([a], [], [b], [a, b], [b, a])
    ]
    order = grouped_by_demos(prompts)
    assert sorted(order) == list(range(len(prompts)))
    assert order[:3] == [0, 5, 10] and order[3:6] == [2, 7, 12]  # first appearance, stable
    assert order[-3:] == [1, 6, 11]  # zero-shot last
    demos = [prompts[i].demos for i in order]
    assert len([d for k, d in enumerate(demos) if k == 0 or demos[k - 1] != d]) == 5
