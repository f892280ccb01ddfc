"""Visualisations: sizes derived from the layout constants, content not blank, patch windows exact.

Real VGG19 weights on the CPU, images of 64 px made in code (and the shared
photos when they are there), so the whole file runs in seconds.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylize import visualize as vis
from stylize.images import to_tensor
from stylize.vgg import features_for, layer_channels, receptive_field

SHARED = Path(__file__).resolve().parents[3] / "shared" / "images"
SIZE = 64


# ---------------------------------------------------------------- fixtures and helpers

@pytest.fixture(scope="module")
def net():
    # Deep enough for every test; the same cached trunk all_visualizations gets.
    return features_for(["relu5_1"])


def gradient(size: int = SIZE) -> Image.Image:
    across = np.linspace(0, 255, size, dtype=np.float32)[None, :].repeat(size, 0)  # (size, size)
    rgb = np.stack([across, across.T, 255 - across], -1)
    return Image.fromarray(rgb.astype(np.uint8))


def checkerboard(size: int = SIZE, cell: int = 8) -> Image.Image:
    yy, xx = np.mgrid[:size, :size]
    board = (((yy // cell) + (xx // cell)) % 2 * 255).astype(np.uint8)
    return Image.fromarray(np.stack([board, 255 - board, board // 2], -1))


def noise(size: int = SIZE, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def bright_square(top: int, left: int, side: int = 8, size: int = SIZE) -> Image.Image:
    arr = np.zeros((size, size, 3), np.uint8)
    arr[top:top + side, left:left + side] = 255
    return Image.fromarray(arr)


def photo(kind: str, name: str, fallback: Image.Image) -> Image.Image:
    path = SHARED / kind / name
    if not path.is_file():
        return fallback
    with Image.open(path) as img:
        return vis._fit(img, SIZE)


def assert_picture(img: Image.Image, size: tuple[int, int] | None = None, colours: int = 20) -> None:
    """An RGB image of the expected size with real content in it (not one flat colour)."""
    assert img.mode == "RGB"
    if size is not None:
        assert img.size == size
    arr = np.asarray(img).astype(np.uint32)
    assert arr.std() > 10
    packed = (arr[..., 0] << 16) | (arr[..., 1] << 8) | arr[..., 2]  # one number per colour: fast unique
    assert len(np.unique(packed)) > colours


def grid_side(tiles_across: int, tile: int) -> int:
    return tiles_across * (tile + vis._PAD) + vis._PAD


# ---------------------------------------------------------------- colour map

def test_colour_map_runs_from_dark_purple_to_yellow_with_rising_brightness():
    lut = vis._lut()
    assert lut.shape == (256, 3)
    assert torch.allclose(lut[0] * 255, torch.tensor([68.0, 1.0, 84.0]), atol=1)
    assert torch.allclose(lut[-1] * 255, torch.tensor([253.0, 231.0, 37.0]), atol=1)
    luminance = lut @ torch.tensor([0.299, 0.587, 0.114])
    assert (luminance.diff() >= -1e-6).all()


# ---------------------------------------------------------------- feature maps

def test_feature_grid_has_one_column_block_per_image(net):
    images = {"content": gradient(), "style": checkerboard(), "result": noise()}
    img = vis.feature_maps(net, images, "relu2_1", count=16, size=SIZE)
    side = grid_side(4, vis._TILE)  # 16 channels: 4 x 4 tiles
    assert_picture(img, (3 * side + 2 * vis._GAP, vis._label_height(1) + side))


def test_feature_grid_wraps_an_uneven_channel_count(net):
    img = vis.feature_maps(net, {"only": gradient()}, "relu5_1", count=5, size=SIZE)
    assert_picture(img, (grid_side(3, vis._TILE), vis._label_height(1) + grid_side(2, vis._TILE)))


class _FakeNet(torch.nn.Module):
    """Stands in for VGG: channel c of "relu1_1" is c times the image's mean brightness,
    or (63 - c) times it for dark images when `flip_dark`, so dark images rank channels backwards."""

    def __init__(self, flip_dark: bool = False):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives visualize a device to read
        self.flip_dark = flip_dark

    def forward(self, image, layers):
        level = image.mean()
        ramp = torch.arange(64.0)
        ramp = ramp.flip(0) if self.flip_dark and level < 0.4 else ramp
        return {"relu1_1": ramp.view(1, 64, 1, 1).expand(1, 64, 8, 8) * level}


def _tile_centres(net) -> tuple[np.ndarray, np.ndarray]:
    """Centre colours of the single tile of a bright (first) and a dim grey image's grids."""
    grey = {"bright": Image.new("RGB", (32, 32), (128,) * 3), "dim": Image.new("RGB", (32, 32), (64,) * 3)}
    img = vis.feature_maps(net, grey, "relu1_1", count=1, size=32)
    y = vis._label_height(1) + vis._PAD + vis._TILE // 2
    second_block = grid_side(1, vis._TILE) + vis._GAP
    centre = vis._PAD + vis._TILE // 2
    return np.asarray(img.getpixel((centre, y))), np.asarray(img.getpixel((second_block + centre, y)))


def test_feature_maps_show_the_first_images_channels_for_every_image():
    lut = (vis._lut() * 255).round().numpy()
    bright, dim = _tile_centres(_FakeNet(flip_dark=True))
    # Channel 63, the bright image's best, is 0 in the dim image; the dim image's own best would be full.
    assert np.abs(bright - lut[255]).max() <= 1
    assert np.abs(dim - lut[0]).max() <= 1


def test_feature_maps_share_one_brightness_scale_per_channel():
    lut = (vis._lut() * 255).round().numpy()
    bright, dim = _tile_centres(_FakeNet())
    # Normalised by the brighter image, the dim one (half the activation) sits half way up the map.
    assert np.abs(bright - lut[255]).max() <= 1
    assert np.abs(dim - lut[128]).max() <= 3


# ---------------------------------------------------------------- Gram heatmaps

def test_gram_heatmaps_have_a_row_per_layer_with_three_maps_and_a_colour_bar(net):
    layers = ("relu1_1", "relu3_1", "relu5_1")
    img = vis.gram_heatmaps(net, checkerboard(), noise(), layers, size=SIZE, channels=32)
    cell = vis._HEAT + vis._GAP
    width = vis._ROW_LABEL_W + 3 * cell + vis._BAR_W + vis._TICK_W
    assert_picture(img, (width, vis._label_height(1) + len(layers) * cell))


def test_gram_difference_of_an_image_with_itself_is_the_bottom_colour(net):
    img = vis.gram_heatmaps(net, noise(), noise(), ["relu2_1"], size=SIZE)
    left, top = vis._ROW_LABEL_W + 2 * (vis._HEAT + vis._GAP), vis._label_height(1)
    diff = np.asarray(img.crop((left, top, left + vis._HEAT, top + vis._HEAT))).reshape(-1, 3)
    assert (diff == (vis._lut()[0] * 255).round().numpy()).all()
    style = np.asarray(img.crop((vis._ROW_LABEL_W, top, vis._ROW_LABEL_W + vis._HEAT, top + vis._HEAT)))
    assert style.std() > 10


# ---------------------------------------------------------------- top patches

@pytest.mark.parametrize("layer, side", [("relu1_1", 3), ("relu3_1", 24)])
def test_patch_windows_are_as_wide_as_the_receptive_field(layer, side):
    assert receptive_field(layer).size == side
    activation = torch.rand(layer_channels(layer), 16, 16)
    for _, (top, left, bottom, right) in vis.top_unit_windows(activation, layer, unit=3, k=9):
        assert (bottom - top, right - left) == (side, side)


def test_top_unit_window_is_the_receptive_field_of_the_peak():
    activation = torch.zeros(256, 16, 16)
    activation[42, 5, 7] = 10.0
    (score, window), *_ = vis.top_unit_windows(activation, "relu3_1", unit=42, k=9)
    assert score == 10.0
    # relu3_1: stride 4, offset -10 (three padded 3x3 convs before and one after two pools), 24 px.
    assert window == (5 * 4 - 10, 7 * 4 - 10, 5 * 4 - 10 + 24, 7 * 4 - 10 + 24)


def test_top_unit_windows_skip_the_neighbours_of_a_peak():
    activation = torch.zeros(256, 16, 16)
    activation[0, 5, 7], activation[0, 5, 8], activation[0, 12, 12] = 10.0, 9.0, 8.0
    found = vis.top_unit_windows(activation, "relu3_1", unit=0, k=3)
    rf = receptive_field("relu3_1")
    assert [w for _, w in found[:2]] == [rf.window(5, 7), rf.window(12, 12)]
    assert [s for s, _ in found] == sorted((s for s, _ in found), reverse=True)


def test_top_unit_windows_fill_up_from_a_map_too_small_for_k_places():
    found = vis.top_unit_windows(torch.rand(512, 2, 2), "relu5_1", unit=7, k=9)
    assert len({w for _, w in found}) == 4  # every position once


@pytest.mark.parametrize("top, left", [(28, 28), (10, 40), (44, 12)])
def test_best_relu3_1_patch_of_a_bright_square_is_centred_on_it(net, top, left):
    with torch.no_grad():
        activation = net(to_tensor(bright_square(top, left)), ["relu3_1"])["relu3_1"][0]
    unit = int(activation.amax(dim=(1, 2)).argmax())  # the unit that fires hardest anywhere
    _, (w_top, w_left, w_bottom, w_right) = vis.top_unit_windows(activation, "relu3_1", unit, k=9)[0]
    assert w_top <= top and w_left <= left and w_bottom >= top + 8 and w_right >= left + 8
    stride = receptive_field("relu3_1").stride
    assert abs((w_top + w_bottom) / 2 - (top + 4)) <= stride
    assert abs((w_left + w_right) / 2 - (left + 4)) <= stride


def test_best_relu1_1_patch_of_a_bright_square_touches_it(net):
    with torch.no_grad():
        activation = net(to_tensor(bright_square(28, 28)), ["relu1_1"])["relu1_1"][0]
    unit = int(activation.amax(dim=(1, 2)).argmax())
    _, (top, left, bottom, right) = vis.top_unit_windows(activation, "relu1_1", unit, k=9)[0]
    assert top < 36 and bottom > 28 and left < 36 and right > 28


@pytest.mark.parametrize("unit", [256, -1, 1.5, True, "3"])
def test_a_unit_the_layer_does_not_have_is_a_value_error(net, unit):
    with pytest.raises(ValueError, match="relu3_1.*256 channels"):
        vis.top_unit_windows(torch.rand(256, 4, 4), "relu3_1", unit)
    with pytest.raises(ValueError, match="unit"):
        vis.top_patches(net, {"x": noise()}, "relu3_1", unit, size=SIZE)


def test_asking_for_no_windows_is_a_value_error():
    with pytest.raises(ValueError, match="k must be at least 1"):
        vis.top_unit_windows(torch.rand(64, 4, 4), "relu1_1", 0, k=0)


def test_top_patches_lay_out_a_3x3_grid_per_image(net):
    images = {"content": gradient(), "style": checkerboard(), "result": noise()}
    img = vis.top_patches(net, images, "relu3_1", unit=42, k=9, size=SIZE, patch_px=64)
    side = grid_side(3, 64)
    assert_picture(img, (3 * side + 2 * vis._GAP, vis._label_height(2) + side))


def test_a_window_past_the_border_is_padded_grey():
    patch = vis._crop(Image.new("RGB", (20, 20), (255, 255, 255)), (-5, -5, 10, 10))
    assert patch.size == (15, 15)
    assert patch.getpixel((0, 0)) == vis._GREY
    assert patch.getpixel((7, 7)) == (255, 255, 255)


# ---------------------------------------------------------------- loss curves

def two_scale_history(steps_per_scale: int = 10) -> list[dict]:
    history, step = [], 0
    for scale in range(2):
        for iteration in range(1, steps_per_scale + 1):
            step += 1
            decay = math.exp(-iteration / 4) * (10 if scale == 0 else 3)
            losses = {"content:relu4_2": 1 + decay, "style:relu1_1": 40 * decay, "style:relu3_1": 9 * decay,
                      "tv": 0.01 * decay}
            history.append({"step": step, "scale": scale, "iteration": iteration, "loss": sum(losses.values()),
                            "losses": losses})
    return history


def test_loss_curves_draw_every_series_and_mark_the_scale_change():
    img = vis.loss_curves(two_scale_history(), width=800, height=450)
    assert_picture(img, (800, 450), colours=8)
    arr = np.asarray(img)
    for colour in ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"):  # one per term, total in black
        assert (arr == vis._hex(colour)).all(-1).any()
    # The dashed line: grey pixels in a column at step 11 of 20.
    x = round(70 + (11 - 1) / (20 - 1) * (800 - 170 - 70))
    column = arr[30:410, x - 1:x + 2]
    assert (column == vis._GREY).all(-1).any(-1).sum() > 100


def test_loss_curves_on_a_linear_axis_keep_zero_values():
    history = two_scale_history()
    history[3]["losses"]["tv"] = 0.0
    assert_picture(vis.loss_curves(history, width=640, height=360, log_scale=False), (640, 360), colours=8)


def test_loss_curves_skip_values_a_log_axis_cannot_show():
    history = [{"step": 1, "scale": 0, "loss": 0.0, "losses": {"tv": -1.0}},
               {"step": 2, "scale": 0, "loss": float("nan"), "losses": {"tv": 2.0}},
               {"step": 3, "scale": 0, "loss": 5.0, "losses": {"tv": 1.0}}]
    assert_picture(vis.loss_curves(history), (800, 450), colours=5)


@pytest.mark.parametrize("history", [[], [{"step": 1, "scale": 0, "loss": 0.0, "losses": {}}]])
def test_loss_curves_without_data_say_so(history):
    img = vis.loss_curves(history, width=400, height=200)
    assert img.mode == "RGB" and img.size == (400, 200)
    assert np.asarray(img).std() > 1


# ---------------------------------------------------------------- everything for one job

def test_all_visualizations_returns_stable_file_name_safe_keys():
    content = photo("content", "chelsea.png", gradient())
    style = photo("style", "starry_night.jpg", checkerboard())
    result = Image.blend(content.convert("RGB"), style.convert("RGB").resize(content.size), 0.5)
    out = vis.all_visualizations(content, style, result, two_scale_history(), size=SIZE)
    assert list(out) == ["features_relu1_1", "features_relu2_1", "features_relu3_1", "features_relu4_1",
                         "features_relu5_1", "gram", "patches", "loss"]
    for key, img in out.items():
        assert re.fullmatch(r"[a-z0-9_]+", key)
        assert_picture(img)
        assert img.width * img.height < 4_000_000  # a few MB at most, even uncompressed
