"""The style transfer engine: pure PyTorch + Pillow (no web framework, no task queue)."""

from .batch import BatchJob, batch_key, compatible, run_batch
from .checkpoint import Checkpoint
from .config import PRESETS, StyleConfig
from .engine import run
from .errors import (Cancelled, ConfigError, DeviceMemoryError, ImageError, ImageTooLarge, StylizeError,
                     WeightsError)
from .images import load_image
from .result import Progress, Result, read_metadata

__version__ = "0.1.0"

__all__ = ["BatchJob", "Cancelled", "Checkpoint", "ConfigError", "DeviceMemoryError", "ImageError", "ImageTooLarge",
           "PRESETS", "Progress", "Result", "StyleConfig", "StylizeError", "WeightsError", "load_image",
           "batch_key", "compatible", "read_metadata", "run", "run_batch", "__version__"]
