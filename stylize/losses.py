"""The costs of Gatys et al.: content, style (Gram), and an optional total variation.

Shapes: activations are (1, C, H, W); Gram matrices are (C, C).
"""

from __future__ import annotations

import torch


def gram(features: torch.Tensor) -> torch.Tensor:
    """G_kk' = Σ_ij a_ijk a_ijk' divided by n_H·n_W.

    The seed divides the squared Gram difference by (2 n_H n_W n_C)²; dividing
    each Gram by its own n_H n_W first and the difference by (2 n_C)² is the
    same number when both images have one size, and stays meaningful when the
    style image has another size (it always may: style scale, aspect ratio).
    Computed in fp32 whatever the activations' dtype (bf16 Grams lose the style).
    """
    _, channels, height, width = features.shape
    flat = features.reshape(channels, height * width).float()  # (C, HW)
    return (flat @ flat.T) / (height * width)  # (C, C)


def style_cost(gram_result: torch.Tensor, gram_style: torch.Tensor) -> torch.Tensor:
    """J_style^[l] = ‖G(S) − G(G)‖²_F / (2 n_C)², on pixel-normalised Grams (see `gram`)."""
    channels = gram_result.shape[0]
    return (gram_result - gram_style).pow(2).sum() / (2 * channels) ** 2


def content_cost(result: torch.Tensor, content: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """J_content^[l] = ½‖a(C) − a(G)‖².

    With `normalize` (the default) the sum becomes a mean over the activations,
    so α keeps its meaning at every output size and across scales; without it,
    this is the seed's formula.
    """
    squared = (result.float() - content.float()).pow(2)
    return 0.5 * (squared.mean() if normalize else squared.sum())


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels (image (1, 3, H, W), 0..1).

    Not in the seed: a small weight suppresses the high-frequency noise that
    L-BFGS leaves in flat regions.
    """
    dy = image[:, :, 1:, :] - image[:, :, :-1, :]
    dx = image[:, :, :, 1:] - image[:, :, :, :-1]
    return dy.pow(2).mean() + dx.pow(2).mean()
