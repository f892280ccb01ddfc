"""The style transfer engine: pure PyTorch + Pillow (no web framework, no task queue)."""

from .checkpoint import Checkpoint
from .config import PRESETS, StyleConfig
from .engine import run
from .errors import (Cancelled, ConfigError, DeviceMemoryError, ImageError, ImageTooLarge, StylizeError,
                     WeightsError)
from .images import load_image
from .result import Progress, Result, read_metadata

__version__ = "0.1.0"

__all__ = ["Cancelled", "Checkpoint", "ConfigError", "DeviceMemoryError", "ImageError", "ImageTooLarge",
           "PRESETS", "Progress", "Result", "StyleConfig", "StylizeError", "WeightsError", "load_image",
           "read_metadata", "run", "__version__"]
