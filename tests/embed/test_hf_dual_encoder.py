"""HFDualEncoder: tiny CLIP, SigLIP and SigLIP 2 built from config, saved, and loaded by path
offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from drum.data.jsonl import read_examples
from drum.embed.hf import HFDualEncoder


@pytest.fixture(scope="module", params=["clip", "siglip", "siglip2"])
def encoder(
    request: pytest.FixtureRequest,
    tiny_clip_dir: Path,
    tiny_siglip_dir: Path,
    tiny_siglip2_dir: Path,
) -> HFDualEncoder:
    paths = {"clip": tiny_clip_dir, "siglip": tiny_siglip_dir, "siglip2": tiny_siglip2_dir}
    encoder = HFDualEncoder(paths[request.param])
    assert encoder.model.config.model_type == request.param
    return encoder


def _image(seed: int, height: int = 32, width: int = 32) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_shapes_and_unit_norm(encoder: HFDualEncoder, tiny_world: Path) -> None:
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")[:5]
    images = encoder.embed_images([e.image for e in pool])
    texts = encoder.embed_texts([e.text for e in pool])
    assert images.shape == (5, encoder.dim) and texts.shape == (5, encoder.dim)
    assert images.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)


def test_batching_does_not_change_vectors(encoder: HFDualEncoder, tiny_world: Path) -> None:
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")[:7]
    images = [e.image for e in pool]
    texts = [e.text for e in pool]
    np.testing.assert_allclose(
        encoder.embed_images(images, batch_size=3),
        encoder.embed_images(images, batch_size=7),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        encoder.embed_texts(texts, batch_size=2),
        encoder.embed_texts(texts, batch_size=7),
        atol=1e-5,
    )


def test_matches_the_model_called_directly(encoder: HFDualEncoder) -> None:
    """The wrapper gives the normalised features of the model's own forward pass, on what its
    processor makes of the inputs (for SigLIP 2 also the patch mask and the patch grid)."""
    image = _image(0, 24, 40)
    processed = encoder.processor.image_processor(images=[image], return_tensors="pt")
    with torch.no_grad():
        direct = encoder.model.get_image_features(**processed).pooler_output
    direct = torch.nn.functional.normalize(direct, dim=-1).numpy()
    np.testing.assert_allclose(encoder.embed_images([image]), direct, atol=1e-5)


def test_text_matches_the_model_called_directly(encoder: HFDualEncoder) -> None:
    """SigLIP and SigLIP 2 read texts padded to their fixed length, CLIP to the batch's."""
    texts = ["what colour is the circle", "a square"]
    model_type = encoder.model.config.model_type
    max_length = encoder.model.config.text_config.max_position_embeddings
    tokens = encoder.processor.tokenizer(
        texts,
        padding="max_length" if model_type.startswith("siglip") else True,
        max_length=max_length,
        truncation=True,
        return_tensors="pt",
    )
    inputs = {"input_ids": tokens["input_ids"]}
    if model_type != "siglip":  # SigLIP's text tower was trained without a mask
        inputs["attention_mask"] = tokens["attention_mask"]
    with torch.no_grad():
        direct = encoder.model.get_text_features(**inputs).pooler_output
    direct = torch.nn.functional.normalize(direct, dim=-1).numpy()
    np.testing.assert_allclose(encoder.embed_texts(texts), direct, atol=1e-5)


def test_siglip2_keeps_each_images_aspect_ratio(tiny_siglip2_dir: Path) -> None:
    """SigLIP 2 resizes to a patch grid of the image's own shape (at most 16 patches here) and
    pads the rest: a wide, a tall and a square image get different grids, and embedding them in
    one padded batch gives what embedding each alone gives."""
    encoder = HFDualEncoder(tiny_siglip2_dir)
    images = [_image(1, 16, 64), _image(2, 64, 16), _image(3, 40, 40)]
    processed = encoder.processor.image_processor(images=images, return_tensors="pt")
    grids = [tuple(shape) for shape in processed["spatial_shapes"].tolist()]
    assert len(set(grids)) == 3 and all(rows * cols <= 16 for rows, cols in grids)
    assert processed["pixel_attention_mask"].sum(dim=1).tolist() == [r * c for r, c in grids]
    alone = np.concatenate([encoder.embed_images([image]) for image in images])
    np.testing.assert_allclose(encoder.embed_images(images, batch_size=3), alone, atol=1e-5)


def test_real_size_photo_goes_through_the_processor(encoder: HFDualEncoder) -> None:
    from skimage import data

    photo = Image.fromarray(data.astronaut())  # 512 x 512 RGB
    assert encoder.embed_images([photo]).shape == (1, encoder.dim)


def test_fingerprint_tracks_the_weights(tiny_clip_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_clip_dir, copy)
    assert HFDualEncoder(copy).fingerprint == HFDualEncoder(tiny_clip_dir).fingerprint
    model = HFDualEncoder(copy).model
    with torch.no_grad():
        model.visual_projection.weight.mul_(2.0)
    model.save_pretrained(copy)
    assert HFDualEncoder(copy).fingerprint != HFDualEncoder(tiny_clip_dir).fingerprint


def test_rejects_a_model_that_is_not_a_dual_encoder(tiny_clip_dir: Path, tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    BertModel(config).save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "processor_config.json"):
        shutil.copy(tiny_clip_dir / name, tmp_path / name)
    with pytest.raises(ValueError, match="not a supported dual encoder"):
        HFDualEncoder(tmp_path)


def test_a_dtype_other_than_fp32_has_its_own_fingerprint(
    tiny_clip_dir: Path, tiny_world: Path
) -> None:
    fp32 = HFDualEncoder(tiny_clip_dir)
    assert HFDualEncoder(tiny_clip_dir, dtype=torch.float32).fingerprint == fp32.fingerprint
    bf16 = HFDualEncoder(tiny_clip_dir, dtype=torch.bfloat16)
    assert bf16.model.dtype == torch.bfloat16 and bf16.fingerprint != fp32.fingerprint
    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")[:3]
    vectors = bf16.embed_images([e.image for e in pool])
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, fp32.embed_images([e.image for e in pool]), atol=0.05)
