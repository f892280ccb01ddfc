"""The project's quality measure (DESIGN.md): content and style cost of a finished result.

At the result's size, with the bundled VGG19:
* content cost = ½ · mean squared difference at relu4_2 against the content
  image resized to the result;
* style cost = Σ over relu1_1 … relu5_1 of 0.2 · ‖G_S/(n_H n_W)_S − G_G/(n_H n_W)_G‖²_F / (2 n_C)²,
  the style image resized to the result's pixel count.
Lower is better on both; a result dominates another when neither cost is higher.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from . import images
from .losses import content_cost, gram, style_cost
from .vgg import features_for

CONTENT_LAYER = "relu4_2"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@dataclass(frozen=True)
class Costs:
    content: float
    style: float

    def dominates(self, other: "Costs") -> bool:
        return self.content <= other.content and self.style <= other.style


def measure(result: Image.Image, content: Image.Image, style: Image.Image) -> Costs:
    result = images.split_alpha(result)[0]
    size = result.size
    net = features_for((CONTENT_LAYER,) + STYLE_LAYERS)
    style_size = images.fit_pixels(*style.size, size[0] * size[1])
    with torch.no_grad():
        r = net(images.to_tensor(result), (CONTENT_LAYER,) + STYLE_LAYERS)
        c = net(images.to_tensor(images.resize(images.split_alpha(content)[0], size)), (CONTENT_LAYER,))
        s = net(images.to_tensor(images.resize(images.split_alpha(style)[0], style_size)), STYLE_LAYERS)
        content_value = content_cost(r[CONTENT_LAYER], c[CONTENT_LAYER])
        style_value = sum(0.2 * style_cost(gram(r[n]), gram(s[n])) for n in STYLE_LAYERS)
    return Costs(content=float(content_value), style=float(style_value))
