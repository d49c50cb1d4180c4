"""The multi-positive contrastive loss: reduces to CLIP's loss; a naive loop; gradients."""

from __future__ import annotations

import math

import torch

from drum.losses.contrastive import MultiPositiveContrastiveLoss, multi_positive_contrastive_loss


def test_identity_positives_is_clip_loss() -> None:
    logits = torch.randn(6, 6, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(6)
    clip = (
        torch.nn.functional.cross_entropy(logits, labels)
        + torch.nn.functional.cross_entropy(logits.T, labels)
    ) / 2
    torch.testing.assert_close(
        multi_positive_contrastive_loss(logits, torch.eye(6, dtype=torch.bool)), clip
    )


def test_matches_a_naive_loop() -> None:
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 5, generator=generator, dtype=torch.float64)
    groups = torch.tensor([0, 1, 0, 2, 1])
    positives = groups[:, None] == groups[None, :]
    total_i, total_t = 0.0, 0.0
    for i in range(5):
        row = logits[i].exp() / logits[i].exp().sum()
        total_i += -math.log(sum(row[j] for j in range(5) if positives[i, j]))
        col = logits[:, i].exp() / logits[:, i].exp().sum()
        total_t += -math.log(sum(col[j] for j in range(5) if positives[j, i]))
    expected = (total_i / 5 + total_t / 5) / 2
    assert abs(float(multi_positive_contrastive_loss(logits, positives)) - expected) < 1e-10


def test_gradcheck() -> None:
    logits = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    positives = torch.tensor(
        [[1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.bool
    )
    assert torch.autograd.gradcheck(
        lambda x: multi_positive_contrastive_loss(x, positives), (logits,)
    )


def test_module_normalises_and_scales() -> None:
    image, text = torch.randn(3, 8), torch.randn(3, 8)
    positives = torch.eye(3, dtype=torch.bool)
    scale = torch.tensor(math.log(10.0))
    logits = (
        10.0
        * torch.nn.functional.normalize(image, dim=-1)
        @ torch.nn.functional.normalize(text, dim=-1).T
    )
    torch.testing.assert_close(
        MultiPositiveContrastiveLoss()(image, text, positives, scale),
        multi_positive_contrastive_loss(logits, positives),
    )
