"""The costs: Gram matrix, style cost against the seed's formula, content cost, total variation."""

from __future__ import annotations

import pytest
import torch

from stylize.losses import content_cost, gram, style_cost, total_variation


def features(channels: int, height: int, width: int, seed: int) -> torch.Tensor:
    return torch.rand(1, channels, height, width, generator=torch.Generator().manual_seed(seed))


def test_gram_of_a_tiny_map_matches_the_hand_computed_matrix():
    a = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, C=2, H=1, W=2): channel 0 = [1, 2], channel 1 = [3, 4]
    # Σ_ij a_ijk a_ijk': [[1+4, 3+8], [3+8, 9+16]], divided by n_H n_W = 2.
    assert torch.equal(gram(a), torch.tensor([[2.5, 5.5], [5.5, 12.5]]))


def test_gram_is_symmetric_and_computed_in_float32_from_bfloat16():
    a = features(3, 4, 5, seed=0).to(torch.bfloat16)
    g = gram(a)
    assert g.dtype == torch.float32 and g.shape == (3, 3)
    assert torch.equal(g, g.T)


def test_a_tiled_map_has_the_same_gram_as_its_tile():
    # Per-pixel normalisation: a style image twice as large with the same texture weighs the same.
    tile = features(4, 3, 5, seed=1)
    assert torch.allclose(gram(torch.cat([tile, tile], dim=3)), gram(tile), rtol=1e-6)


@pytest.mark.parametrize("channels, height, width", [(2, 1, 2), (4, 3, 5), (8, 6, 6)])
def test_style_cost_equals_the_seed_formula_when_both_images_have_one_size(channels, height, width):
    s, g = features(channels, height, width, seed=2).double(), features(channels, height, width, seed=3).double()
    # Seed: J = 1 / (2 n_H n_W n_C)² · ‖G(S) − G(G)‖²_F with unnormalised Grams G = F Fᵀ.
    flat_s, flat_g = s.reshape(channels, -1), g.reshape(channels, -1)
    unnormalised_s, unnormalised_g = flat_s @ flat_s.T, flat_g @ flat_g.T
    seed = (unnormalised_s - unnormalised_g).pow(2).sum() / (2 * height * width * channels) ** 2
    assert style_cost(gram(g), gram(s)).item() == pytest.approx(seed.item(), rel=1e-5)


def test_style_cost_of_equal_grams_is_zero_and_grows_with_the_difference():
    g = gram(features(4, 3, 3, seed=4))
    assert style_cost(g, g).item() == 0.0
    near, far = style_cost(g + 0.1, g).item(), style_cost(g + 0.2, g).item()
    assert 0 < near < far and far == pytest.approx(4 * near, rel=1e-5)  # quadratic


def test_content_cost_is_half_the_mean_squared_difference():
    result = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    content = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    # differences 0, 2, 3, 4 -> squares 0, 4, 9, 16: sum 29, mean 7.25
    assert content_cost(result, content).item() == pytest.approx(0.5 * 7.25)
    assert content_cost(result, content, normalize=True).item() == pytest.approx(3.625)


def test_content_cost_without_normalising_is_the_seeds_half_sum():
    result = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    content = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    assert content_cost(result, content, normalize=False).item() == pytest.approx(0.5 * 29)


def test_content_cost_has_the_gradient_of_the_half_sum():
    result = features(2, 3, 3, seed=5).requires_grad_(True)
    content = features(2, 3, 3, seed=6)
    content_cost(result, content, normalize=False).backward()
    assert torch.allclose(result.grad, result.detach() - content)


def test_total_variation_of_a_hand_made_tensor():
    image = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])  # (1, 1, 2, 2)
    # vertical: 2-0, 4-1 -> 4, 9: mean 6.5; horizontal: 1-0, 4-2 -> 1, 4: mean 2.5
    assert total_variation(image).item() == pytest.approx(9.0)


def test_total_variation_of_a_flat_image_is_zero():
    assert total_variation(torch.full((1, 3, 5, 7), 0.3)).item() == 0.0
