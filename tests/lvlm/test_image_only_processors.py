"""The image-only processors (InternVL, Pixtral for Mistral3) expand each image placeholder
exactly as the families' own processors would (InternVL: its ``replace_image_token``, called
on the same preprocessed inputs, as the processor itself cannot be built without torchvision;
Pixtral, whose module cannot even be imported without it: by hand), and images of other
shapes (tiled by InternVL, other grids for Mistral3) score through the models; the attention
reader takes a Mistral3 image's visual tokens, not its row break."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from PIL import Image

from drum.data import read_examples
from drum.lvlm.attention import patch_attention, patch_grid_attention
from drum.lvlm.hf import HFLVLM
from drum.lvlm.internvl_processor import InternVLImageOnlyProcessor
from drum.lvlm.pixtral_processor import PixtralImageOnlyProcessor
from drum.lvlm.prompt import ICLPrompt, ImagePart, TextPart, Turn


def _images(tiny_world: Path) -> list[Image.Image]:
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    square = Image.open(pool[0].image).convert("RGB")
    # A wide and a tall image: InternVL tiles them, Pixtral gives them other grids.
    return [square, square.resize((96, 32)), square.resize((32, 64))]


@pytest.fixture(scope="module")
def internvl(build: Callable[[str], Any]) -> HFLVLM:
    return HFLVLM(build("internvl").path)


def test_internvl_expands_as_its_processor(internvl: HFLVLM, tiny_world: Path) -> None:
    from transformers.models.internvl.processing_internvl import InternVLProcessor

    processor = internvl.processor
    assert isinstance(processor, InternVLImageOnlyProcessor)
    images = _images(tiny_world)
    text = f"one {processor.image_token} two {processor.image_token}{processor.image_token}"
    out = processor([text], [images], return_text_replacement_offsets=True)
    tiles = processor.image_processor(images=images, crop_to_patches=True)["num_patches"]
    assert [int(n) for n in tiles][1:] != [1, 1]  # the wide and tall images are tiled
    assert out["pixel_values"].shape[0] == sum(tiles)
    own = SimpleNamespace(
        start_image_token="<img>",
        end_image_token="</img>",
        image_token="<IMG_CONTEXT>",
        image_seq_length=processor.image_seq_length,
    )
    expected = [
        InternVLProcessor.replace_image_token(own, {"num_patches": tiles}, i) for i in range(3)
    ]
    assert [e["replacement"] for e in out["text_replacement_offsets"][0]] == expected
    by_text = processor.tokenizer(f"one {expected[0]} two {expected[1]}{expected[2]}")
    assert out["input_ids"][0].tolist() == by_text["input_ids"]


def test_a_tiled_internvl_image_scores_and_generates(
    internvl: HFLVLM, tiny_world: Path, tmp_path: Path
) -> None:
    # A wide image becomes several tiles (and a thumbnail): as many visual tokens as the
    # projector writes for them, or the model refuses the batch.
    wide = tmp_path / "wide.png"
    _images(tiny_world)[1].save(wide)
    prompt = ICLPrompt((), Turn((TextPart("one"), ImagePart(wide), TextPart("two"))))
    (result,) = internvl.score([prompt], ["red"])
    assert result.tokens == 1 and result.sum < 0
    assert len(internvl.generate([prompt], max_new_tokens=2)) == 1


def test_pixtral_expands_as_its_processor(
    build: Callable[[str], Any], tiny_world: Path, tmp_path: Path
) -> None:
    lvlm = HFLVLM(build("mistral3").path)
    processor = lvlm.processor
    assert isinstance(processor, PixtralImageOnlyProcessor)
    images = _images(tiny_world)
    text = f"one {processor.image_token} two {processor.image_token}{processor.image_token}"
    out = processor([text], [images], return_text_replacement_offsets=True)
    sizes = out["image_sizes"].tolist()
    assert len({tuple(size) for size in sizes}) == 3  # three different grids
    # By hand (PixtralProcessor's module needs torchvision even to import): a row of [IMG]
    # per merged patch row, each row ended by [IMG_BREAK], the last one by [IMG_END].
    step = 8 * 2  # the tiny Mistral3's patch size and spatial merge
    expected = []
    for height, width in sizes:
        rows = ["[IMG]" * (width // step) + "[IMG_BREAK]"] * (height // step)
        expected.append("".join(rows)[: -len("[IMG_BREAK]")] + "[IMG_END]")
    assert [e["replacement"] for e in out["text_replacement_offsets"][0]] == expected
    # The model takes the three grids in one batch (the padded pixel values, their sizes).
    paths = [tmp_path / f"{i}.png" for i in range(3)]
    for image, path in zip(images, paths, strict=True):
        image.save(path)
    prompt = ICLPrompt((), Turn((TextPart("one"), *(ImagePart(p) for p in paths))))
    assert lvlm.score([prompt], ["red"])[0].sum < 0


def test_the_attention_reader_skips_a_pixtral_images_row_break(
    build: Callable[[str], Any], interleaved: tuple[list[ICLPrompt], list[str]]
) -> None:
    # Each tiny Mistral3 image spans [IMG][IMG][IMG_BREAK][IMG][IMG]: four visual tokens, the
    # 2 x 2 merged blocks of its 4 x 4 patch grid.
    lvlm = HFLVLM(build("mistral3").path)
    prompts = interleaved[0]
    weights = patch_attention(lvlm, prompts)
    assert weights.shape == (len(prompts), 4) and bool((weights > 0).all())
    grid = patch_grid_attention(lvlm, prompts, grid=4)
    assert torch.equal(grid[:, ::2, ::2].reshape(len(prompts), 4), weights)
