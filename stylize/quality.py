"""The project's quality measure, "the look" (DESIGN.md): how much of the painting a result carries.

For each style layer l (relu1_1 … relu5_1) and viewing size s ∈ {512, 256} (result,
content and style resized with Lanczos so the long side is s, the style to the same
pixel count), with Grams divided by n_H·n_W:

    J^l(X)   = ‖G^l(X) − G^l(S)‖²_F / (2 n_C)²
    r_l(s)   = J^l(result) / J^l(content photo)      the share of the distance left
    match(s) = geometric mean of r_l(s) over the five layers   (lower = closer)

Two viewing sizes because a person sees strokes up close and the painting's large
forms and colours from afar; the geometric mean because every layer counts the
same whatever its magnitude (the old single number let relu4_1 outweigh relu1_1 by
10^5). Also the content cost (½·mean squared difference at relu4_2 at the result's
size) and the palette distance (sliced Wasserstein distance between the RGB values of
256×256 thumbnails of result and style). One result dominates another when it is no
worse on any of the four.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from PIL import Image

from . import images
from .config import STYLE_LAYER_ORDER
from .losses import content_cost, gram, style_cost
from .vgg import features_for

CONTENT_LAYER = "relu4_2"
STYLE_LAYERS = STYLE_LAYER_ORDER
VIEWING_SIZES = (512, 256)
THUMBNAIL = (256, 256)
PALETTE_DIRECTIONS = 64
_DIRECTION_SEED = 20161  # fixed: the palette distance of two images never changes between runs


@dataclass(frozen=True)
class Look:
    content: float  # content cost at relu4_2 (lower = closer to the photo)
    match_512: float  # geometric mean share of the photo's style distance left, seen at 512 px
    match_256: float  # the same seen at 256 px (the whole picture at a glance)
    palette: float  # sliced Wasserstein distance of RGB values to the style (0..1 units)

    def dominates(self, other: "Look") -> bool:
        return all(mine <= theirs for mine, theirs in zip(asdict(self).values(), asdict(other).values()))

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def measure(result: Image.Image, content: Image.Image, style: Image.Image) -> Look:
    result, content, style = (images.split_alpha(i)[0] for i in (result, content, style))
    net = features_for((CONTENT_LAYER,) + STYLE_LAYERS)
    with torch.no_grad():
        at_size = images.to_tensor(_lanczos(content, result.size))
        content_value = content_cost(net(images.to_tensor(result), (CONTENT_LAYER,))[CONTENT_LAYER],
                                     net(at_size, (CONTENT_LAYER,))[CONTENT_LAYER])
        matches = [match(result, content, style, size, net) for size in VIEWING_SIZES]
    return Look(content=float(content_value), match_512=matches[0], match_256=matches[1],
                palette=palette_distance(result, style))


def layer_ratios(result: Image.Image, content: Image.Image, style: Image.Image, long_side: int,
                 net=None) -> dict[str, float]:
    """r_l(s) for each style layer: J^l(result) / J^l(content), all seen at `long_side`."""
    net = net or features_for(STYLE_LAYERS)
    size = images.fit_long_side(*result.size, long_side)
    style_size = images.fit_pixels(*style.size, size[0] * size[1])
    with torch.no_grad():
        r, c, s = (net(images.to_tensor(_lanczos(img, wh)), STYLE_LAYERS)
                   for img, wh in ((result, size), (content, size), (style, style_size)))
        ratios = {}
        for name in STYLE_LAYERS:
            target = gram(s[name])
            ratios[name] = float(style_cost(gram(r[name]), target)) / max(
                float(style_cost(gram(c[name]), target)), 1e-30)
    return ratios


def match(result: Image.Image, content: Image.Image, style: Image.Image, long_side: int, net=None) -> float:
    ratios = layer_ratios(result, content, style, long_side, net)
    return math.exp(sum(math.log(max(r, 1e-30)) for r in ratios.values()) / len(ratios))


def palette_distance(a: Image.Image, b: Image.Image) -> float:
    """Sliced Wasserstein-1 distance between the RGB values (0..1) of two 256×256 thumbnails."""
    pixels = [images.to_tensor(_lanczos(images.split_alpha(i)[0], THUMBNAIL)).reshape(3, -1) for i in (a, b)]
    generator = torch.Generator().manual_seed(_DIRECTION_SEED)
    directions = torch.randn(PALETTE_DIRECTIONS, 3, generator=generator, dtype=torch.float64)
    directions /= directions.norm(dim=1, keepdim=True)  # (D, 3) unit vectors
    projected = [(directions @ p.double()).sort(dim=1).values for p in pixels]  # (D, P) each
    return float((projected[0] - projected[1]).abs().mean())


def _lanczos(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    return img if img.size == tuple(size) else img.resize(tuple(size), Image.Resampling.LANCZOS)
