"""Tests for stylize.images; every test image is generated here, no binary fixtures."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
import torch
from PIL import ExifTags, Image, ImageFile

from stylize import images
from stylize.errors import ImageError, ImageTooLarge
from stylize.images import (
    fit_long_side,
    fit_pixels,
    load_image,
    match_color_statistics,
    merge_alpha,
    resize,
    rgb_to_yuv,
    split_alpha,
    to_image,
    to_tensor,
    transfer_luminance,
    yuv_to_rgb,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def quadrants(width: int = 64, height: int = 32) -> Image.Image:
    """Red top-left, green top-right, blue bottom-left, white bottom-right."""
    img = Image.new("RGB", (width, height))
    half_w, half_h = width // 2, height // 2
    for box, colour in [
        ((0, 0, half_w, half_h), RED),
        ((half_w, 0, width, half_h), GREEN),
        ((0, half_h, half_w, height), BLUE),
        ((half_w, half_h, width, height), WHITE),
    ]:
        img.paste(colour, box)
    return img


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8, generator=g)
    return Image.frombytes("RGB", (width, height), data.numpy().tobytes())


def png_claiming(width: int, height: int) -> bytes:
    """A valid-looking PNG whose IHDR declares width x height but holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00"))
        + chunk(b"IEND", b"")
    )


def close_to(actual, expected, tolerance: int = 2) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected))


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_it_loads_each_allowed_format_by_content_even_with_a_wrong_extension(tmp_path, fmt):
    path = tmp_path / "picture.gif"
    path.write_bytes(encode(quadrants(), fmt, quality=95))

    img = load_image(path)

    assert img.mode == "RGB"
    assert img.size == (64, 32)
    assert close_to(img.getpixel((2, 2)), RED, tolerance=8)


def test_it_accepts_bytes_str_paths_and_file_objects_alike(tmp_path):
    data = encode(quadrants(), "PNG")
    path = tmp_path / "a.png"
    path.write_bytes(data)

    for source in (data, bytearray(data), str(path), path, io.BytesIO(data)):
        assert load_image(source).getpixel((2, 2)) == RED


def test_it_rejects_a_text_file_named_png_and_names_the_allowed_formats(tmp_path):
    path = tmp_path / "holiday.png"
    path.write_text("this is not a picture\n")

    with pytest.raises(ImageError) as caught:
        load_image(path)

    message = str(caught.value)
    assert "holiday.png" in message
    assert all(word in message for word in ("JPEG", "PNG", "WebP"))
    assert str(tmp_path) not in message  # the server's directory stays private


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>",
        b"",
    ],
    ids=["svg", "html", "empty"],
)
def test_it_rejects_bytes_that_are_not_an_image(data):
    with pytest.raises(ImageError, match="JPEG, PNG or WebP"):
        load_image(data)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_it_rejects_real_images_in_formats_that_are_not_allowed(fmt):
    with pytest.raises(ImageError, match="JPEG, PNG or WebP"):
        load_image(encode(quadrants(), fmt))


def test_it_names_the_uploaded_file_object_in_errors():
    upload = io.BytesIO(b"GIF89a not really")
    upload.name = "/home/someone/uploads/cat.gif"

    with pytest.raises(ImageError, match="'cat.gif'"):
        load_image(upload)


def test_it_reports_a_missing_file_as_an_image_error(tmp_path):
    with pytest.raises(ImageError, match="missing.png"):
        load_image(tmp_path / "missing.png")


# --------------------------------------------------------------------------- damaged files


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_it_rejects_a_truncated_image_saying_it_is_truncated(tmp_path, fmt):
    data = encode(noise(96, 96), fmt, quality=95)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(ImageError, match="truncated") as caught:
        load_image(path)

    assert "cut." in str(caught.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_it_rejects_a_png_whose_compressed_pixels_are_garbage():
    data = bytearray(encode(noise(32, 32), "PNG"))
    start = data.index(b"IDAT") + 4
    data[start + 10 : start + 200] = bytes(190)  # the chunk CRC is now wrong too

    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(bytes(data))


# --------------------------------------------------------------------------- size limits


@pytest.fixture
def decoding_is_forbidden(monkeypatch):
    """Fail the test if any pixel data is decoded."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


# 8000^2 trips our own limit, 10000^2 Pillow's warning and 30000^2 Pillow's error.
@pytest.mark.parametrize("side", [8000, 10000, 30000])
def test_it_refuses_an_image_whose_header_declares_too_many_pixels_without_decoding_it(
    decoding_is_forbidden, side
):
    with pytest.raises(ImageTooLarge) as caught:
        load_image(png_claiming(side, side))

    message = str(caught.value)
    assert f"{side}x{side}" in message
    assert "40,000,000" in message


def test_it_refuses_a_giant_png_on_disk_and_names_it(tmp_path, decoding_is_forbidden):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(30000, 30000))

    with pytest.raises(ImageTooLarge, match="30000x30000") as caught:
        load_image(path)

    assert "bomb.png" in str(caught.value)


def test_it_applies_a_custom_pixel_limit():
    data = encode(quadrants(100, 100), "PNG")

    assert load_image(data, max_pixels=10_000).size == (100, 100)
    with pytest.raises(ImageTooLarge, match="100x100"):
        load_image(data, max_pixels=9_999)


def test_a_too_large_error_is_also_an_image_error():
    assert issubclass(ImageTooLarge, ImageError)


# --------------------------------------------------------------------------- modes, metadata


def test_it_turns_a_jpeg_upright_from_its_exif_orientation():
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # "rotate 90° clockwise to display"
    data = encode(quadrants(64, 32), "JPEG", quality=95, exif=exif)

    img = load_image(data)

    assert img.size == (32, 64)
    # Rotating clockwise takes the stored top-left corner (red) to the top-right.
    assert close_to(img.getpixel((28, 3)), RED, tolerance=12)
    assert close_to(img.getpixel((3, 3)), BLUE, tolerance=12)


def test_it_scales_16_bit_grey_to_8_bit_instead_of_clipping():
    grey = Image.new("I;16", (3, 1))
    for x, value in enumerate((65535, 32768, 0)):
        grey.putpixel((x, 0), value)

    img = load_image(encode(grey, "PNG"))

    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == (255, 255, 255)
    assert close_to(img.getpixel((1, 0)), (128, 128, 128), tolerance=1)
    assert img.getpixel((2, 0)) == (0, 0, 0)


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_16_bit_grey_scaling_does_not_depend_on_the_byte_order(mode):
    grey = Image.new(mode, (2, 1))
    grey.putpixel((0, 0), 65535)
    grey.putpixel((1, 0), 32768)

    img = images._to_rgb_or_rgba(grey, "test")

    assert [img.getpixel((x, 0)) for x in range(2)] == [(255,) * 3, (128,) * 3]


def test_it_gives_a_palette_png_with_transparency_an_alpha_channel():
    palette_img = Image.new("P", (2, 1))
    palette_img.putpalette([0, 0, 0, 200, 10, 10] + [0, 0, 0] * 254)
    palette_img.putpixel((1, 0), 1)

    img = load_image(encode(palette_img, "PNG", transparency=0))

    assert img.mode == "RGBA"
    assert img.getpixel((0, 0))[3] == 0
    assert img.getpixel((1, 0)) == (200, 10, 10, 255)


def test_it_turns_a_palette_png_without_transparency_into_rgb():
    img = load_image(encode(quadrants().convert("P"), "PNG"))

    assert img.mode == "RGB"
    assert img.getpixel((2, 2)) == RED


def test_it_turns_grey_with_alpha_into_rgba():
    la = Image.new("LA", (2, 1), (90, 255))
    la.putpixel((1, 0), (40, 100))

    img = load_image(encode(la, "PNG"))

    assert img.mode == "RGBA"
    assert img.getpixel((0, 0)) == (90, 90, 90, 255)
    assert img.getpixel((1, 0)) == (40, 40, 40, 100)


@pytest.mark.parametrize("mode", ["L", "1"])
def test_it_turns_grey_and_bilevel_pngs_into_rgb(mode):
    img = load_image(encode(Image.new(mode, (4, 4), 255), "PNG"))

    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == WHITE


def test_it_turns_a_cmyk_jpeg_into_rgb():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red ink

    img = load_image(encode(cmyk, "JPEG", quality=95))

    assert img.mode == "RGB"
    assert close_to(img.getpixel((8, 8)), RED, tolerance=8)


def test_it_keeps_real_transparency_but_drops_an_alpha_that_is_fully_opaque():
    translucent = Image.new("RGBA", (4, 4), (10, 20, 30, 128))
    opaque = Image.new("RGBA", (4, 4), (10, 20, 30, 255))

    assert load_image(encode(translucent, "PNG")).getpixel((0, 0)) == (10, 20, 30, 128)
    kept = load_image(encode(opaque, "PNG"))
    assert kept.mode == "RGB"
    assert kept.getpixel((0, 0)) == (10, 20, 30)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_it_takes_the_first_frame_of_an_animation(fmt):
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, GREEN, BLUE)]
    data = encode(
        frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, lossless=True
    )
    assert Image.open(io.BytesIO(data)).n_frames == 3  # sanity: really animated

    img = load_image(data)

    assert img.size == (8, 8)
    assert close_to(img.getpixel((4, 4)), RED)
    assert getattr(img, "n_frames", 1) == 1


def test_it_strips_exif_gps_and_other_metadata():
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Camera"
    exif[ExifTags.Base.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (1.0, 2.0, 3.0),
    }
    data = encode(quadrants(), "JPEG", exif=exif, comment=b"secret")
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # sanity

    img = load_image(data)

    assert len(img.getexif()) == 0
    assert "exif" not in img.info
    assert img.info == {}


def test_it_strips_png_text_chunks():
    from PIL.PngImagePlugin import PngInfo

    text = PngInfo()
    text.add_text("Comment", "home address")

    assert load_image(encode(quadrants(), "PNG", pnginfo=text)).info == {}


# --------------------------------------------------------------------------- alpha, sizes, resize


def test_split_then_merge_alpha_gives_back_the_same_image():
    rgba = noise(16, 8).convert("RGBA")
    rgba.putalpha(noise(16, 8, seed=1).getchannel("R"))

    rgb, alpha = split_alpha(rgba)

    assert rgb.mode == "RGB" and alpha.mode == "L"
    assert merge_alpha(rgb, alpha).tobytes() == rgba.tobytes()


def test_splitting_an_rgb_image_gives_no_alpha_and_merging_none_gives_rgb():
    rgb, alpha = split_alpha(quadrants())

    assert alpha is None
    assert merge_alpha(rgb, None).mode == "RGB"


def test_merge_alpha_resizes_the_alpha_to_the_rgb_size():
    alpha = Image.new("L", (64, 32), 77)

    merged = merge_alpha(Image.new("RGB", (32, 16), RED), alpha)

    assert merged.size == (32, 16)
    assert merged.getpixel((5, 5)) == (255, 0, 0, 77)


@pytest.mark.parametrize(
    ("width", "height", "long_side", "expected"),
    [
        (4000, 3000, 1000, (1000, 750)),
        (3000, 4000, 1000, (750, 1000)),
        (1001, 1, 100, (100, 1)),  # the short side never reaches 0
        (300, 200, 600, (600, 400)),  # enlarging is allowed
        (1000, 25, 100, (100, 3)),  # 2.5 rounds half up, not to even
    ],
)
def test_fit_long_side_scales_the_longer_side_and_keeps_the_aspect(
    width, height, long_side, expected
):
    assert fit_long_side(width, height, long_side) == expected


@pytest.mark.parametrize(
    ("width", "height", "pixels", "expected"),
    [
        (4000, 3000, 1_200_000, (1265, 949)),
        (1000, 1000, 250_000, (500, 500)),
        (100, 50, 20_000, (200, 100)),
        (10_000, 1, 100, (1000, 1)),
    ],
)
def test_fit_pixels_keeps_the_aspect_and_the_area_near_the_target(width, height, pixels, expected):
    w, h = fit_pixels(width, height, pixels)

    assert (w, h) == expected


def test_size_helpers_reject_sizes_below_one():
    with pytest.raises(ValueError):
        fit_long_side(0, 10, 10)
    with pytest.raises(ValueError):
        fit_pixels(10, 10, 0)


@pytest.mark.parametrize("size", [(16, 8), (256, 128), (100, 300)])
def test_resize_gives_the_requested_size_and_keeps_flat_colours(size):
    img = resize(Image.new("RGB", (64, 32), (10, 120, 240)), size)

    assert img.size == size
    assert img.getpixel((size[0] // 2, size[1] // 2)) == (10, 120, 240)


# --------------------------------------------------------------------------- tensors


def test_to_tensor_and_to_image_round_trip_uint8_data_exactly():
    img = noise(17, 9)

    t = to_tensor(img)

    assert t.shape == (1, 3, 9, 17) and t.dtype == torch.float32
    assert 0.0 <= t.min() and t.max() <= 1.0
    assert t[0, :, 0, 0].mul(255).round().tolist() == list(img.getpixel((0, 0)))
    assert to_image(t).tobytes() == img.tobytes()


def test_to_image_accepts_an_unbatched_tensor_that_needs_grad_and_clamps_it():
    nan = float("nan")
    t = torch.tensor([[[-0.5, 0.5]], [[1.5, 0.0]], [[nan, 1.0]]], requires_grad=True)  # (3, 1, 2)

    img = to_image(t)

    assert img.mode == "RGB" and img.size == (2, 1)
    assert img.getpixel((0, 0)) == (0, 255, 0)
    assert img.getpixel((1, 0)) == (128, 0, 255)


def test_to_tensor_refuses_an_image_with_alpha():
    with pytest.raises(ValueError, match="split_alpha"):
        to_tensor(Image.new("RGBA", (2, 2)))


def test_to_image_refuses_a_batch_of_several_images():
    with pytest.raises(ValueError):
        to_image(torch.zeros(2, 3, 4, 4))


# --------------------------------------------------------------------------- colour


def random_image_tensor(seed: int, low=0.0, high=1.0, size=(1, 3, 24, 32)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(size, generator=g)


def test_yuv_and_rgb_conversions_are_inverses():
    rgb = random_image_tensor(0)

    assert torch.allclose(yuv_to_rgb(rgb_to_yuv(rgb)), rgb, atol=1e-6)
    assert torch.allclose(rgb_to_yuv(yuv_to_rgb(rgb)), rgb, atol=1e-6)


def test_yuv_of_grey_has_no_chroma_and_its_luminance_is_the_grey_level():
    grey = torch.full((1, 3, 2, 2), 0.4)

    yuv = rgb_to_yuv(grey)

    assert torch.allclose(yuv[:, 0], torch.tensor(0.4))
    assert torch.allclose(yuv[:, 1:], torch.tensor(0.0), atol=1e-7)


def test_transfer_luminance_keeps_the_stylized_luminance_and_the_content_chroma():
    content = random_image_tensor(1, 0.35, 0.65)
    stylized = random_image_tensor(2, 0.35, 0.65)

    out = transfer_luminance(content, stylized)

    assert out.shape == stylized.shape
    yuv_out, yuv_content, yuv_stylized = rgb_to_yuv(out), rgb_to_yuv(content), rgb_to_yuv(stylized)
    assert torch.allclose(yuv_out[:, 0], yuv_stylized[:, 0], atol=1e-5)
    assert torch.allclose(yuv_out[:, 1:], yuv_content[:, 1:], atol=1e-5)


def test_transfer_luminance_works_on_channels_last_tensors_that_need_grad():
    content = random_image_tensor(7, 0.35, 0.65).contiguous(memory_format=torch.channels_last)
    stylized = random_image_tensor(8, 0.35, 0.65).requires_grad_()

    out = transfer_luminance(content, stylized)
    out.sum().backward()

    assert torch.allclose(rgb_to_yuv(out)[:, 1:], rgb_to_yuv(content)[:, 1:], atol=1e-5)
    assert stylized.grad is not None


def test_transfer_luminance_resizes_the_content_to_the_stylized_size():
    content = torch.tensor([0.6, 0.4, 0.4]).view(1, 3, 1, 1).expand(1, 3, 40, 60)  # flat pink
    stylized = random_image_tensor(3, 0.4, 0.6, size=(1, 3, 20, 30))

    out = transfer_luminance(content, stylized)

    assert out.shape == (1, 3, 20, 30)
    expected_uv = rgb_to_yuv(content[:, :, :1, :1])[:, 1:]
    assert torch.allclose(rgb_to_yuv(out)[:, 1:], expected_uv.expand(1, 2, 20, 30), atol=1e-5)


def test_transfer_luminance_clamps_to_the_unit_range():
    out = transfer_luminance(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1), torch.ones(1, 3, 1, 1))

    assert 0.0 <= out.min() and out.max() <= 1.0


def correlated_colours(seed: int, mean, mix, size=(1, 3, 40, 50)) -> torch.Tensor:
    """Bounded (uniform) pixels with a given mean and correlated channels."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(size, generator=g) - 0.5  # (1, 3, H, W) in ±0.5
    mixed = torch.einsum("ij,njhw->nihw", torch.tensor(mix), u)
    return mixed + torch.tensor(mean).view(1, 3, 1, 1)


def stats(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = t.flatten(2)[0].double()  # (3, P)
    return x.mean(dim=1), torch.cov(x, correction=0)


SOURCE_MIX = [[0.3, 0.1, 0.0], [0.1, 0.4, 0.1], [0.0, 0.2, 0.3]]
REFERENCE_MIX = [[0.1, 0.05, 0.0], [0.0, 0.12, 0.03], [0.02, 0.0, 0.08]]


@pytest.mark.parametrize("layout", ["plain", "channels_last", "bfloat16_autocast"])
def test_match_color_statistics_gives_the_source_the_reference_mean_and_covariance(layout):
    source = correlated_colours(4, [0.3, 0.5, 0.6], SOURCE_MIX)
    reference = correlated_colours(5, [0.55, 0.45, 0.4], REFERENCE_MIX, size=(1, 3, 30, 20))

    if layout == "channels_last":  # how the engine holds its tensors
        source = source.contiguous(memory_format=torch.channels_last)
        reference = reference.contiguous(memory_format=torch.channels_last)
    if layout == "bfloat16_autocast":  # the engine calls it under autocast
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = match_color_statistics(source, reference)
    else:
        out = match_color_statistics(source, reference)

    assert out.shape == source.shape and out.dtype == torch.float32
    assert 0.0 < out.min() and out.max() < 1.0  # so clamping did not interfere
    mean_out, cov_out = stats(out)
    mean_ref, cov_ref = stats(reference)
    assert torch.allclose(mean_out, mean_ref, atol=1e-5)
    assert torch.allclose(cov_out, cov_ref, atol=1e-6, rtol=1e-3)


def test_match_color_statistics_turns_a_flat_source_into_the_reference_mean_without_blowing_up():
    flat = torch.full((1, 3, 8, 8), 0.2)
    reference = random_image_tensor(6)

    out = match_color_statistics(flat, reference)

    assert torch.isfinite(out).all()
    assert torch.allclose(out, reference.mean(dim=(2, 3), keepdim=True).expand_as(out), atol=1e-5)
