"""Checkpoint: enough of a run's state to continue it where it stopped, and small: the image, the
best image of the scale, the step and, for Adam, its moments; at most ~4x the image's own size."""

from __future__ import annotations

import io
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Any, Mapping

import torch

from .errors import ConfigError

# Options that may differ on resume: where it runs does not change what it computes
# (beyond float rounding).
_MAY_DIFFER = {"device", "precision"}


@dataclass(frozen=True)
class Checkpoint:
    scale: int  # index of the scale being optimised
    iteration: int  # iterations done at that scale
    image: torch.Tensor  # (1, 3, H, W) on the CPU, 0..1 RGB
    optimizer_state: Mapping[str, Any]  # Adam's state_dict; {} for L-BFGS (engine._resumable_state)
    loss_scale: float  # what the scale's cost is multiplied by for the optimiser
    best_loss: float  # lowest cost seen at this scale, and the image that had it
    best_image: torch.Tensor | None
    history: tuple[Mapping[str, Any], ...]
    seed: int
    config: Mapping[str, Any]  # StyleConfig.to_dict() of the run, seed included
    elapsed: float

    def check_matches(self, config) -> None:
        """Refuse to continue a run under other settings: the result would be neither."""
        theirs = dict(self.config)
        mine = config.to_dict()
        changed = sorted(k for k in mine if k not in _MAY_DIFFER and mine[k] != theirs.get(k))
        if changed:
            raise ConfigError("resume", f"the checkpoint was taken with other settings ({', '.join(changed)})")

    def save(self, target: str | Path | IO[bytes]) -> None:
        torch.save({f.name: getattr(self, f.name) for f in fields(self)}, target)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        self.save(buffer)
        return buffer.getvalue()

    @classmethod
    def load(cls, source: str | Path | IO[bytes] | bytes) -> "Checkpoint":
        if isinstance(source, (bytes, bytearray)):
            source = io.BytesIO(source)
        try:
            data = torch.load(source, map_location="cpu", weights_only=True)
            data["history"] = tuple(data["history"])
            return cls(**data)
        except Exception as exc:  # corrupt file, other format, missing keys
            raise ConfigError("resume", f"not a readable checkpoint: {exc}") from exc
