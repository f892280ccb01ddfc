"""Device choice and out-of-memory reporting. Nothing here runs at import time
(Celery forks its workers, and CUDA does not survive a fork)."""

from __future__ import annotations

import logging
import math

import torch

from .errors import ConfigError, DeviceMemoryError

log = logging.getLogger(__name__)

# Rough peak of one VGG19 forward+backward to relu5_1 in fp32, per pixel: activations
# kept for the backward pass plus their gradients (measured order of magnitude).
BYTES_PER_PIXEL = 8 * 1024
_OOM_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory")


def resolve_device(spec: str = "auto") -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device", f"{spec} was asked for but this machine has no usable CUDA GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError("device", f"{spec} does not exist; this machine has "
                                        f"{torch.cuda.device_count()} GPU(s)")
    return device


def setup_device(device: torch.device) -> None:
    if device.type == "cuda":
        # TF32 convolutions and matmuls: ~2x faster on Ampere and later; the style
        # costs do not move visibly (they compare Grams of the same network).
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        # No cuDNN autotuning. On an H200 with it (bench/look_sweep.py, gpu_check.py, 2026-12-04)
        # a 512 px run took 6-13 s the first time a process met its image shapes and 2 s after,
        # and each job brings shapes of its own; the peak memory of one 512 px fp32 run was
        # 33 GB and of one 1024 px run 133 GB, far above its activations (bf16: 0.6 and 2.4 GB),
        # the autotuner's trial workspaces by all signs, which would starve a batch or a second job.
        torch.backends.cudnn.benchmark = False


def out_of_memory(exc: BaseException, device: torch.device, sizes, index: int) -> DeviceMemoryError | None:
    """A DeviceMemoryError naming a size that fits, if `exc` is an out-of-memory error."""
    is_oom = isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MESSAGES))
    if not is_oom:
        return None
    width, height = sizes[index]
    fits = _fitting_long_side(device, width, height)
    if index > 0:
        fits = max(fits, max(sizes[index - 1]))  # the previous scale did run
    where = "GPU" if device.type == "cuda" else "host"
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return DeviceMemoryError(
        f"Out of {where} memory at {width}x{height} px. A result of about {fits} px on the long "
        f"side should fit; choose a smaller size (or fewer/lower style layers).", fits=fits)


def _fitting_long_side(device: torch.device, width: int, height: int) -> int:
    long_side = max(width, height)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        pixels = 0.8 * free / BYTES_PER_PIXEL
        fits = int(math.sqrt(pixels * long_side / min(width, height)))
        return max(32, min(fits, long_side - 1) // 16 * 16)
    return max(32, int(long_side * 0.7) // 16 * 16)
