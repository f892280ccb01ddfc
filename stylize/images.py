"""Image I/O and colour helpers: safe loading, resizing, tensor conversion, colour transfer.

load_image() is the only place that reads untrusted bytes, so it is strict: the
format is decided by content, the pixel count is checked from the header before
any pixels are decoded, and every failure becomes an ImageError whose message
can be shown to the person who uploaded the file.
"""

from __future__ import annotations

import io
import logging
import math
import os
import struct
import warnings
import zlib
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, ImageTooLarge

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 40_000_000  # pixels (width * height)
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
_ALLOWED_WORDS = "JPEG, PNG or WebP"

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, IO[bytes]]

# What Pillow raises, besides OSError, on bytes that stop early or contradict themselves.
_CORRUPT_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_SIXTEEN_BIT_GREY_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def load_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read a JPEG, PNG or WebP into a fresh, upright RGB or RGBA image without metadata.

    `source` is a path, the file's bytes, or a binary file object (read from its start).
    Raises ImageTooLarge if the header declares more than `max_pixels` pixels, and
    ImageError for anything else that makes the file unusable.
    """
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be at least 1, got {max_pixels}")
    name = _describe(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    with _open(source, name, max_pixels) as im:
        _check_pixels(im.size, max_pixels, name)  # before load(): nothing is allocated yet
        _decode(im, name)
        log.debug("decoded %s: %s %s %dx%d", name, im.format, im.mode, *im.size)
        upright = _apply_orientation(im, name)  # a copy of the first frame only
    return _without_metadata(_to_rgb_or_rgba(upright, name))


def _describe(source: ImageSource) -> str:
    """How error messages name the source: the file's name, never its full server path."""
    if isinstance(source, (str, os.PathLike)):
        return f"'{Path(source).name}'"
    filename = getattr(source, "name", None)  # Django's UploadedFile carries the client's name
    if isinstance(filename, str) and filename:
        return f"'{os.path.basename(filename)}'"
    return "the image"


def _open(source: str | os.PathLike | IO[bytes], name: str, max_pixels: int) -> Image.Image:
    try:
        # Pillow warns, rather than refuses, between MAX_IMAGE_PIXELS and twice that;
        # make the warning an error here so a bomb is never decoded.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(source, formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        pillow_limit = Image.MAX_IMAGE_PIXELS or max_pixels
        size = _declared_size(source)
        raise _too_large(name, size, min(max_pixels, pillow_limit)) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(
            f"{name} is not an image Pillow can read as {_ALLOWED_WORDS}; "
            f"only those formats are accepted (not GIF, BMP, SVG, HEIC, ...)"
        ) from exc
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise ImageError(f"cannot open {name}: {exc.strerror}") from exc
    except _CORRUPT_ERRORS as exc:
        log.info("could not open %s: %r", name, exc)
        raise ImageError(f"{name} is truncated or corrupt: its header cannot be read") from exc


def _declared_size(source: str | os.PathLike | IO[bytes]) -> tuple[int, int] | None:
    """The (w, h) in the header of an image Image.open() refused as a bomb, or None."""
    # Image.open() raises before handing the image back, so the size is lost; the
    # format plugins themselves only parse the header and skip the bomb check.
    try:
        with ExitStack() as stack:
            if isinstance(source, (str, os.PathLike)):
                source = stack.enter_context(open(source, "rb"))
            source.seek(0)
            prefix = source.read(16)
            Image.init()
            for fmt in ALLOWED_FORMATS:
                factory, accept = Image.OPEN[fmt]
                accepted = accept(prefix) if accept else True
                if accepted and not isinstance(accepted, str):
                    source.seek(0)
                    return factory(source).size
    except Exception:  # only feeds an error message; never mask the real error
        log.debug("could not read the declared size", exc_info=True)
    return None


def _too_large(name: str, size: tuple[int, int] | None, limit: int) -> ImageTooLarge:
    declared = f"is {size[0]}x{size[1]} ({size[0] * size[1]:,} pixels)" if size else "is too large"
    return ImageTooLarge(
        f"{name} {declared}, more than the limit of {limit:,} pixels; scale it down and try again"
    )


def _check_pixels(size: tuple[int, int], max_pixels: int, name: str) -> None:
    if size[0] * size[1] > max_pixels:
        raise _too_large(name, size, max_pixels)


def _decode(im: Image.Image, name: str) -> None:
    try:
        im.load()  # ImageFile.LOAD_TRUNCATED_IMAGES stays False: short data must raise
    except _CORRUPT_ERRORS as exc:
        log.info("could not decode %s: %r", name, exc)
        raise ImageError(
            f"{name} is truncated or corrupt: its pixels cannot be decoded; "
            "try exporting or uploading it again"
        ) from exc


def _apply_orientation(im: Image.Image, name: str) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im)  # returns a copy even when upright
    except Exception:  # a broken EXIF block should not cost the user the picture
        log.warning("ignoring unreadable EXIF orientation in %s", name, exc_info=True)
        return im.copy()


def _to_rgb_or_rgba(img: Image.Image, name: str) -> Image.Image:
    if img.mode in _SIXTEEN_BIT_GREY_MODES:
        img = _sixteen_bit_grey_to_l(img)
    try:
        if img.mode in _ALPHA_MODES or "transparency" in img.info:
            return _drop_opaque_alpha(img.convert("RGBA"))  # P/L/RGB + tRNS included
        return img if img.mode == "RGB" else img.convert("RGB")
    except ValueError as exc:
        raise ImageError(
            f"{name} uses the colour mode {img.mode}, which cannot be converted to RGB"
        ) from exc


def _sixteen_bit_grey_to_l(img: Image.Image) -> Image.Image:
    # Pillow's own I;16 -> L conversion clips at 255 instead of scaling, which turns
    # nearly every 16-bit grey photo white; keep the high byte instead.
    values = np.asarray(img)  # (H, W) uint16 in either byte order, or int32 for mode "I"
    high = (np.clip(values, 0, 65535).astype(np.uint16) >> 8).astype(np.uint8)  # (H, W)
    return Image.fromarray(high)  # mode L


def _drop_opaque_alpha(rgba: Image.Image) -> Image.Image:
    # Downstream an alpha channel costs a split, a resize and a merge; skip it if unused.
    if rgba.getchannel("A").getextrema() == (255, 255):
        return rgba.convert("RGB")
    return rgba


def _without_metadata(img: Image.Image) -> Image.Image:
    # A new image carries no info dict, EXIF (GPS!), ICC profile or text chunks.
    clean = Image.new(img.mode, img.size)
    clean.paste(img)  # same mode, no mask: copies every band, alpha included
    return clean


def split_alpha(img: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """(RGB image, L alpha or None): the network only sees colour; alpha is put back later."""
    if img.mode == "RGB":
        return img, None
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return rgba.convert("RGB"), rgba.getchannel("A")
    return img.convert("RGB"), None


def merge_alpha(rgb: Image.Image, alpha: Image.Image | None) -> Image.Image:
    """Attach `alpha` to `rgb` (RGBA result), resizing it first if the sizes differ."""
    rgb = rgb if rgb.mode == "RGB" else rgb.convert("RGB")
    if alpha is None:
        return rgb
    alpha = alpha if alpha.mode == "L" else alpha.convert("L")
    if alpha.size != rgb.size:
        alpha = resize(alpha, rgb.size)  # the stylized result may be smaller than the input
    merged = rgb.convert("RGBA")  # a copy, so the caller's rgb is untouched
    merged.putalpha(alpha)
    return merged


def fit_long_side(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(w, h) with the same aspect ratio whose longer side is `long_side` (may enlarge)."""
    _check_positive(width=width, height=height, long_side=long_side)
    longest = max(width, height)
    # Multiply before dividing so the long side comes out exact.
    return _round_size(width * long_side / longest), _round_size(height * long_side / longest)


def fit_pixels(width: int, height: int, pixels: int) -> tuple[int, int]:
    """(w, h) with the same aspect ratio and about `pixels` pixels in all (may enlarge)."""
    _check_positive(width=width, height=height, pixels=pixels)
    scale = math.sqrt(pixels / (width * height))
    return _round_size(width * scale), _round_size(height * scale)


def _round_size(x: float) -> int:
    return max(1, math.floor(x + 0.5))  # half up, unlike round(); never 0


def _check_positive(**values: float) -> None:
    for key, value in values.items():
        if not value >= 1:
            raise ValueError(f"{key} must be at least 1, got {value}")


def resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize to (w, h): LANCZOS if either side shrinks, BICUBIC if only enlarging."""
    _check_positive(width=size[0], height=size[1])
    size = (int(size[0]), int(size[1]))
    if size[0] < img.width or size[1] < img.height:
        # reducing_gap=3 first box-reduces by an integer factor: much faster on
        # large photos and visually indistinguishable from a full Lanczos pass.
        return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return img.resize(size, Image.Resampling.BICUBIC)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB image -> float32 tensor (1, 3, H, W) with values in 0..1, on the CPU."""
    if img.mode != "RGB":
        raise ValueError(
            f"to_tensor needs an RGB image, got mode {img.mode}; use split_alpha() first"
        )
    hwc = torch.from_numpy(np.array(img, dtype=np.uint8))  # (H, W, 3) uint8, writable copy
    return hwc.permute(2, 0, 1).unsqueeze(0).contiguous().float().div_(255)  # (1, 3, H, W)


def to_image(t: torch.Tensor) -> Image.Image:
    """Tensor (1, 3, H, W) or (3, H, W) in 0..1, any device -> RGB image (clamped, rounded)."""
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"to_image needs a (1, 3, H, W) or (3, H, W) tensor, got {tuple(t.shape)}")
    chw = t.detach().to("cpu", torch.float32).nan_to_num(0.0).clamp(0, 1)  # (3, H, W)
    hwc = chw.mul(255).round().to(torch.uint8).permute(1, 2, 0).contiguous()  # (H, W, 3)
    return Image.fromarray(hwc.numpy())  # mode RGB


def _yuv_matrix() -> torch.Tensor:
    # BT.601 analogue YUV, built from its definition so grey has exactly zero chroma.
    kr, kb = 0.299, 0.114
    y = torch.tensor([kr, 1.0 - kr - kb, kb], dtype=torch.float64)
    u = 0.436 / (1.0 - kb) * (torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64) - y)
    v = 0.615 / (1.0 - kr) * (torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64) - y)
    return torch.stack([y, u, v])  # (3, 3): rows Y, U, V


_RGB_TO_YUV = _yuv_matrix()
_YUV_TO_RGB = torch.linalg.inv(_RGB_TO_YUV)  # computed, so the pair are exact inverses
_EIGEN_FLOOR = 1e-5  # variance (0..1 units) below ~1 grey level is treated as flat


def rgb_to_yuv(t: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 3, H, W) BT.601 YUV: Y in 0..1, U in ±0.436, V in ±0.615."""
    return _apply_colour_matrix(_RGB_TO_YUV, t)


def yuv_to_rgb(t: torch.Tensor) -> torch.Tensor:
    """Inverse of rgb_to_yuv (not clamped)."""
    return _apply_colour_matrix(_YUV_TO_RGB, t)


def _apply_colour_matrix(matrix: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    _check_image_tensor(t)
    with _full_precision(t):
        return torch.einsum("ij,njhw->nihw", matrix.to(t.device, t.dtype), t)


def _full_precision(t: torch.Tensor) -> torch.autocast:
    # The engine calls these helpers inside bfloat16 autocast; colour maths there
    # would lose whole grey levels, so matmuls here always run in the input dtype.
    return torch.autocast(t.device.type, enabled=False)


def _check_image_tensor(t: torch.Tensor) -> None:
    if t.dim() != 4 or t.shape[1] != 3:
        raise ValueError(f"expected an (N, 3, H, W) RGB tensor, got {tuple(t.shape)}")


def transfer_luminance(content: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
    """Stylized luminance (Y) with the content's chroma (U, V), clamped to 0..1.

    "Luminance-only transfer" (Gatys et al. 2016, Preserving Color in Neural
    Artistic Style Transfer): the result keeps the content's colours and takes
    only light and dark from the stylized image. Shapes (N, 3, H, W); the content
    is resized to the stylized size first if they differ.
    """
    _check_image_tensor(content)
    if content.shape[-2:] != stylized.shape[-2:]:
        content = F.interpolate(
            content, size=stylized.shape[-2:], mode="bicubic", align_corners=False, antialias=True
        ).clamp(0, 1)  # bicubic overshoots at edges
    yuv = rgb_to_yuv(stylized)  # (N, 3, H, W)
    yuv[:, 1:] = rgb_to_yuv(content)[:, 1:]  # U, V from the content
    return yuv_to_rgb(yuv).clamp(0, 1)


def match_color_statistics(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Recolour `source` so its RGB mean and covariance equal `reference`'s, clamped to 0..1.

    The "colour histogram matching" variant of Gatys et al. 2016, used to give the
    style image the content's colours: x' = A (x - mu_s) + mu_r with
    A = cov_r^(1/2) cov_s^(-1/2). Shapes (N, 3, H, W); sizes may differ.
    """
    _check_image_tensor(source)
    _check_image_tensor(reference)
    with _full_precision(source):
        x = source.flatten(2).float()  # (N, 3, H*W)
        mu_s, cov_s = _mean_and_covariance(x)
        mu_r, cov_r = _mean_and_covariance(reference.flatten(2).float())
        a = _symmetric_power(cov_r, 0.5) @ _symmetric_power(cov_s, -0.5)  # (N, 3, 3) float64 CPU
        out = a.to(x.device, x.dtype) @ (x - mu_s) + mu_r  # (N, 3, H*W)
    return out.view_as(source).clamp(0, 1).to(source.dtype)


def _mean_and_covariance(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N, 3, P) -> mean (N, 3, 1) and population covariance (N, 3, 3)."""
    mu = x.mean(dim=-1, keepdim=True)
    centred = x - mu
    return mu, centred @ centred.transpose(-1, -2) / x.shape[-1]


def _symmetric_power(cov: torch.Tensor, power: float) -> torch.Tensor:
    """cov ** power for symmetric PSD (N, 3, 3) matrices, as float64 on the CPU."""
    # 3x3 eigh is cheap on the CPU and float64 there works on every device's input
    # (MPS has no float64). Eigenvalues are floored before inverting so a flat image
    # (zero variance) maps to the reference mean instead of to infinity.
    values, vectors = torch.linalg.eigh(cov.detach().to("cpu", torch.float64))
    floor = _EIGEN_FLOOR if power < 0 else 0.0
    scaled = vectors * values.clamp_min(floor).pow(power).unsqueeze(-2)  # V diag(λ^p)
    return scaled @ vectors.transpose(-1, -2)
