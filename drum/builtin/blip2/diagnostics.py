"""What the gates read: is the small object's detail in the patches, in the Q-Former's
outputs, in the answers, and how much of the Q-Former's attention does it draw?

* ``detail_probe``: a linear probe (multinomial logistic regression, scikit-learn) of the small
  object's colour, trained on one half of a pool's scenes and scored on the other, from (a) the
  mean of the vision tower's features over the patches the small object covers and (b) the
  Q-Former's query outputs, flattened. (a) says the tower keeps the detail; (b) whether the
  bottleneck passes it on.
* ``attention_share``: the Q-Former's cross-attention (mean over layers, heads, queries; CLS
  dropped, renormalised over patches) on the small object's patches, beside the share of the
  patches it covers.
* ``form_accuracy``: per question form, the teacher-forced answer accuracy on fresh questions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers import Blip2ForConditionalGeneration

from drum.builtin.blip2.encode import (
    PoolFeatures,
    QuestionEncoder,
    answer_accuracy,
    pixel_values,
    query_outputs,
)
from drum.builtin.blip2.questions import FORMS, OBJECTS
from drum.builtin.blip2.scenes import COLOURS, small_object_patches
from drum.lvlm.attention import qformer_cross_attention


def small_patch_masks(features: PoolFeatures) -> np.ndarray:
    """``(N, P)`` booleans: the patches each image's small object covers."""
    return np.stack([small_object_patches(features.pool.scene(k)) for k in features.keys])


def probe_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy on the second half of ``(x, y)`` of a multinomial logistic regression fitted on
    the first half (scikit-learn, L2, ``C = 1``)."""
    from sklearn.linear_model import LogisticRegression

    half = len(x) // 2
    classifier = LogisticRegression(max_iter=2000)
    classifier.fit(x[:half], y[:half])
    return float(classifier.score(x[half:], y[half:]))


@torch.no_grad()
def detail_probe(model: Blip2ForConditionalGeneration, features: PoolFeatures) -> dict[str, float]:
    """Small-object colour decodable from the patches and from the query outputs (module
    docstring); chance is 1/6."""
    masks = torch.from_numpy(small_patch_masks(features)).float()
    patches = features.features[:, 1:]
    pooled = (patches * masks[..., None]).sum(1) / masks.sum(1, keepdim=True).clamp(min=1)
    queries = query_outputs(model, features.features).flatten(1)
    y = np.array([COLOURS.index(features.pool.scene(k).small_colour) for k in features.keys])
    return {
        "from_patches": probe_accuracy(pooled.numpy(), y),
        "from_queries": probe_accuracy(queries.numpy(), y),
        "chance": 1 / len(COLOURS),
    }


@torch.no_grad()
def attention_share(
    model: Blip2ForConditionalGeneration, image_processor: Any, features: PoolFeatures
) -> dict[str, float]:
    """The Q-Former's attention on the small object's patches and their share of the image."""
    masks = torch.from_numpy(small_patch_masks(features)).float()
    pixels = pixel_values(image_processor, features.pool, features.keys)
    weights = qformer_cross_attention(model, pixels)[:, 1:]
    weights = weights / weights.sum(1, keepdim=True)
    return {
        "attention": float((weights * masks).sum(1).mean()),
        "area": float(masks.mean()),
    }


def form_accuracy(
    model: Blip2ForConditionalGeneration,
    encoder: QuestionEncoder,
    features: PoolFeatures,
    pad_id: int,
    n: int,
    seed: int,
    forms: list[str] | None = None,
) -> dict[str, float]:
    """Per form (default: all), teacher-forced accuracy on ``n`` questions of ``features``'s
    pool (synthetic forms about either object)."""
    was_training = model.training
    model.eval()
    results = {}
    for name in forms or list(FORMS):
        rng = np.random.default_rng([seed, list(FORMS).index(name)])
        samples = []
        for _ in range(n):
            question = FORMS[name].form(rng, features.pool, OBJECTS)
            samples.append(encoder.encode(question, [features.rows[k] for k in question.images]))
        results[name] = answer_accuracy(model, features.features, samples, pad_id)
    model.train(was_training)
    return results
