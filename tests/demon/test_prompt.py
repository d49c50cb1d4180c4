"""DEMON prompts: the reference script's text layout (instruction + context + choice list,
no separators), each image in place of its placeholder, for single-image, multi-image and
multi-choice samples."""

from __future__ import annotations

from pathlib import Path

from drum.demon.format import DemonSample, DemonTask, read_demon_task
from drum.demon.prompt import demon_prompt, demon_text
from drum.lvlm.prompt import ICLPrompt, ImagePart, TextPart

IMG = tuple(Path(f"/release/T/core/images/{i}.png") for i in range(4))


def _task(sample: DemonSample, instruction: str = "Explain the image. ") -> DemonTask:
    return DemonTask("T", "T", "core", ("unused", instruction), "open-ended", (sample,))


def _flat(prompt: ICLPrompt) -> str:
    """The turn's parts as the reference's text: each image as its <ImageHere> marker."""
    return "".join(p.text if isinstance(p, TextPart) else "<ImageHere>" for p in prompt.query.parts)


def test_a_single_image_sample_is_instruction_image_then_context() -> None:
    sample = DemonSample(0, 1, "{image#1}Caption#1:", IMG[:1], None, "a cat")
    task = _task(sample)
    prompt = demon_prompt(task, sample)
    assert prompt.demos == () and prompt.query.answer is None
    assert prompt.query.parts == (
        TextPart("Explain the image. "),
        ImagePart(IMG[0]),
        TextPart("Caption#1:"),
    )
    assert demon_text(task, sample) == "Explain the image. {image#1}Caption#1:"
    assert prompt.to_messages() == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Explain the image. "},
                {"type": "image"},
                {"type": "text", "text": "Caption#1:"},
            ],
        }
    ]


def test_multi_image_text_runs_on_without_separators_and_blank_pieces_drop() -> None:
    # TQA's layout: the instruction ends without a space, the images stand side by side.
    sample = DemonSample(
        0, 1, "{image#1}{image#2} Question: What produces ozone? ", IMG[:2], None, "Oxygen"
    )
    prompt = demon_prompt(_task(sample, "Answer from the Choice List."), sample)
    assert prompt.query.parts == (
        TextPart("Answer from the Choice List."),
        ImagePart(IMG[0]),
        ImagePart(IMG[1]),
        TextPart(" Question: What produces ozone? "),  # verbatim, spaces kept
    )
    assert prompt.images == [IMG[0], IMG[1]]


def test_tables_and_images_share_one_numbering_in_place() -> None:
    sample = DemonSample(
        2, 1, "Global Table: {table#1} History: {table#2} Current: {image#3} Answer:",
        (IMG[2], IMG[2], IMG[3]), None, "x",
    )  # fmt: skip
    prompt = demon_prompt(_task(sample, "Answer. "), sample)
    assert prompt.query.parts == (
        TextPart("Answer. Global Table: "),
        ImagePart(IMG[2]),
        TextPart(" History: "),
        ImagePart(IMG[2]),  # MMCoQA: one file named twice is shown twice
        TextPart(" Current: "),
        ImagePart(IMG[3]),
        TextPart(" Answer:"),
    )


def test_a_choice_list_is_printed_as_the_reference_prints_it() -> None:
    sample = DemonSample(
        0, 1, "{image#1}Question: what sport? ", IMG[:1], ("soccer", "it's baseball"),
        "it's baseball",
    )  # fmt: skip
    task = _task(sample, "Choose. ")
    # i4_cheetah_llama2.py: "Choice list:['" + "', '".join(choices) + "']. Your answer is:",
    # appended straight after the context, quotes inside a choice left as they are.
    expected = (
        "Choose. {image#1}Question: what sport? "
        "Choice list:['soccer', 'it's baseball']. Your answer is:"
    )
    assert demon_text(task, sample) == expected
    prompt = demon_prompt(task, sample)
    assert _flat(prompt) == expected.replace("{image#1}", "<ImageHere>")
    assert prompt.query.parts[-1] == TextPart(
        "Question: what sport? Choice list:['soccer', 'it's baseball']. Your answer is:"
    )


def test_placeholders_inside_choices_become_images_in_place() -> None:
    sample = DemonSample(
        0, 1, "{image#1}{image#2}Which panel comes next?", IMG[:4],
        ("Image A: {image#3}", "Image B: {image#4}"), "Image B",
    )  # fmt: skip
    prompt = demon_prompt(_task(sample, "Pick. "), sample)
    assert prompt.query.parts == (
        TextPart("Pick. "),
        ImagePart(IMG[0]),
        ImagePart(IMG[1]),
        TextPart("Which panel comes next?Choice list:['Image A: "),
        ImagePart(IMG[2]),
        TextPart("', 'Image B: "),
        ImagePart(IMG[3]),
        TextPart("']. Your answer is:"),
    )


def test_placeholders_map_by_number_and_unnamed_images_follow_the_text() -> None:
    # Out of order: DRUM shows image k at {image#k}; an image no placeholder names comes last
    # (as the reference appends a last unnamed image).
    sample = DemonSample(0, 1, "B: {image#2} A: {image#1} ?", IMG[:3], None, "x")
    prompt = demon_prompt(_task(sample, ""), sample)
    assert prompt.query.parts == (
        TextPart("B: "),
        ImagePart(IMG[1]),
        TextPart(" A: "),
        ImagePart(IMG[0]),
        TextPart(" ?"),
        ImagePart(IMG[2]),
    )


def test_a_placeholder_in_the_instruction_with_no_image_stays_text() -> None:
    # The reference replaces only {image#1}..{image#n}; anything else is left in the text.
    sample = DemonSample(0, 1, "{image#1}", IMG[:1], None, "x")
    prompt = demon_prompt(_task(sample, "Compare with {image#2}: "), sample)
    assert prompt.query.parts == (TextPart("Compare with {image#2}: "), ImagePart(IMG[0]))


def test_the_release_fixture_prompts_use_the_release_images(demon_root: Path) -> None:
    task = read_demon_task(demon_root / "MultiModalQA")
    sample = task.samples[0]
    prompt = demon_prompt(task, sample)
    images = demon_root / "MultiModalQA" / "core" / "images"
    assert prompt.images == [images / "0.png", images / "1.jpg"]
    assert _flat(prompt) == (
        "Utilizing the information, could you answer the following question?Global Table: "
        "<ImageHere> Context: <ImageHere> Question: What sports?"
        "Choice list:['soccer', 'baseball']. Your answer is:"
    )
