"""What a run reports while it works (Progress) and what it returns (Result)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Mapping

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .config import StyleConfig

METADATA_KEY = "stylize"  # PNG text chunk holding the JSON of Result.metadata()


@dataclass(frozen=True)
class Progress:
    """One iteration's report. `losses` holds each weighted term ("content:relu4_2",
    "style:relu1_1", "tv"); they add up to `loss`. Sizes are (width, height).

    preview() and checkpoint() are computed only when called, and only during
    the callback that received this Progress.
    """

    scale: int  # 0-based, coarse to fine
    num_scales: int
    size: tuple[int, int]
    iteration: int  # iterations done at this scale
    iterations: int  # iterations planned at this scale
    step: int  # iterations done over all scales
    total_steps: int
    loss: float
    losses: Mapping[str, float]
    elapsed: float  # seconds, including time before a resume
    eta: float  # seconds left, estimated
    preview_factory: Callable[[], Image.Image] = field(repr=False, compare=False)
    checkpoint_factory: Callable[[], Any] = field(repr=False, compare=False)

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 1.0

    def preview(self) -> Image.Image:
        return self.preview_factory()

    def checkpoint(self):
        """A stylize.Checkpoint that run(..., resume=...) continues from."""
        return self.checkpoint_factory()


@dataclass(frozen=True)
class Result:
    image: Image.Image  # RGB, or RGBA when the content had an alpha channel
    config: StyleConfig  # as run, with the seed filled in
    history: tuple[Mapping[str, Any], ...]  # per iteration: step, scale, iteration, loss, losses
    sizes: tuple[tuple[int, int], ...]  # (width, height) of each scale
    elapsed: float
    device: str
    weights_sha256: str

    def metadata(self) -> dict[str, Any]:
        """All it takes to reproduce this result from the same inputs."""
        from . import __version__

        return {"engine": "stylize", "engine_version": __version__, "weights_sha256": self.weights_sha256,
                "seed": self.config.seed, "params": self.config.to_dict(), "device": self.device}

    def save(self, target: str | Path | IO[bytes]) -> None:
        """Write a PNG that carries metadata() as a text chunk."""
        info = PngInfo()
        info.add_text(METADATA_KEY, json.dumps(self.metadata(), sort_keys=True))
        self.image.save(target, format="PNG", pnginfo=info)


def read_metadata(path_or_file) -> dict[str, Any] | None:
    """The metadata a saved result carries, or None for any other PNG."""
    with Image.open(path_or_file) as img:
        text = img.info.get(METADATA_KEY)
    return json.loads(text) if text else None
