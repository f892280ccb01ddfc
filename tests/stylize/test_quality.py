"""The look measure: identical images score 0, the content photo scores 1, the palette distance
is a distance, and the four figures are compared as DESIGN.md says."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from stylize import quality


def test_the_style_itself_leaves_none_of_the_distance_at_either_viewing_size(photo, painting):
    for size in quality.VIEWING_SIZES:
        ratios = quality.layer_ratios(painting, photo, painting, size)
        assert set(ratios) == set(quality.STYLE_LAYERS)
        assert all(r == pytest.approx(0.0, abs=1e-6) for r in ratios.values())


def test_the_content_photo_leaves_all_of_it(photo, painting):
    assert quality.match(photo, photo, painting, 256) == pytest.approx(1.0, rel=1e-6)
    look = quality.measure(photo, photo, painting)
    assert (look.match_512, look.match_256) == (pytest.approx(1.0, rel=1e-6), pytest.approx(1.0, rel=1e-6))
    assert look.content == pytest.approx(0.0, abs=1e-6)


def test_match_is_the_geometric_mean_of_the_layer_ratios(photo, painting):
    halfway = Image.blend(photo, painting.resize(photo.size), 0.5)
    ratios = quality.layer_ratios(halfway, photo, painting, 256)
    expected = float(np.exp(np.mean(np.log(list(ratios.values())))))
    assert quality.match(halfway, photo, painting, 256) == pytest.approx(expected, rel=1e-9)
    assert 0 < expected < 1  # half the painting's pixels are part of the way there


def test_the_palette_distance_is_0_for_one_image_and_grows_with_a_colour_shift(painting):
    assert quality.palette_distance(painting, painting) == pytest.approx(0.0, abs=1e-12)
    shifted = Image.eval(painting, lambda v: min(255, v + 40))
    further = Image.eval(painting, lambda v: min(255, v + 80))
    assert 0 < quality.palette_distance(shifted, painting) < quality.palette_distance(further, painting)
    assert quality.palette_distance(shifted, painting) == pytest.approx(quality.palette_distance(painting, shifted))


def test_the_palette_distance_of_flat_colours_is_their_mean_projected_gap():
    """Two single-colour images: every slice moves all pixels by |d·(a − b)|, so the distance is
    the mean of that over the 64 fixed directions; for a grey step it is ~ step·E|d_r + d_g + d_b|."""
    black, grey = Image.new("RGB", (40, 30), (0, 0, 0)), Image.new("RGB", (40, 30), (51, 51, 51))
    distance = quality.palette_distance(black, grey)
    assert 0.05 < distance < 0.2 * np.sqrt(3)
    assert quality.palette_distance(black, grey) == distance  # fixed directions: always the same number


def test_one_look_dominates_another_only_when_no_figure_is_worse():
    better = quality.Look(content=1.0, match_512=0.1, match_256=0.1, palette=0.02)
    assert better.dominates(better)
    assert better.dominates(quality.Look(content=2.0, match_512=0.1, match_256=0.2, palette=0.02))
    assert not better.dominates(quality.Look(content=2.0, match_512=0.1, match_256=0.2, palette=0.019))
    assert set(better.as_dict()) == {"content", "match_512", "match_256", "palette"}


def test_an_rgba_result_is_measured_on_its_colours(photo, painting):
    rgba = photo.convert("RGBA")
    assert quality.measure(rgba, photo, painting) == quality.measure(photo, photo, painting)
