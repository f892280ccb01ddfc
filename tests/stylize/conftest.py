"""Small input images for the engine tests, cut from the project's real sample photos.

The photos live in the `shared` folder next to the repository (../shared/images).
They are decoded once per session; treat the images as read-only (`.copy()` first
to change one).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from stylize import images

SHARED_IMAGES = Path(__file__).resolve().parents[3] / "shared" / "images"
SIZE = 64  # long side of every test image, in pixels


def sample(kind: str, name: str, long_side: int = SIZE) -> Image.Image:
    path = SHARED_IMAGES / kind / name
    if not path.is_file():
        pytest.fail(f"sample photo {path} is missing; the tests need the shared images folder")
    img = images.load_image(path)
    return images.resize(img, images.fit_long_side(*img.size, long_side))


@pytest.fixture(scope="session")
def content_image() -> Image.Image:
    """chelsea.png (a cat), 64x43 RGB."""
    return sample("content", "chelsea.png")


@pytest.fixture(scope="session")
def style_image() -> Image.Image:
    """starry_night.jpg, 64x40 RGB."""
    return sample("style", "starry_night.jpg")


@pytest.fixture(scope="session")
def second_style_image() -> Image.Image:
    """the_scream.jpg, 50x64 RGB (portrait, unlike the others)."""
    return sample("style", "the_scream.jpg")


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """tubingen.jpg, 96x72 RGB (the look measure's tests need a few feature-map pixels at relu5_1)."""
    return sample("content", "tubingen.jpg", 96)


@pytest.fixture(scope="session")
def painting() -> Image.Image:
    """starry_night.jpg, 96x61 RGB."""
    return sample("style", "starry_night.jpg", 96)
