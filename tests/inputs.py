"""Inputs for the tests, made in memory: valid and broken images, hostile files, raw
multipart bodies (whose file names reach the server exactly as written), what is on disk."""

from __future__ import annotations

import io
import struct
import uuid
import zlib
from pathlib import Path
from typing import Iterable, Mapping

from PIL import Image

from stylize.config import StyleConfig
from webapp.pages.params import PARAM_FIELDS

GPS_IFD, ORIENTATION = 0x8825, 0x0112
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>\n"
SVG = (b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
       b'<rect width="64" height="64" fill="red"/><script>alert(1)</script></svg>\n')
TEXT = b"Shopping list: bread, milk, a painting by Monet.\n"


# -- pictures -----------------------------------------------------------------------------

def png(size=(48, 32), colour=(200, 80, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def noisy_jpeg(size=(64, 48), seed: int = 1) -> bytes:
    """A JPEG whose pixels vary (a flat colour would compress to almost nothing)."""
    img = Image.frombytes("RGB", size, noise_bytes(size[0] * size[1] * 3, seed))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()


def noise_bytes(count: int, seed: int) -> bytes:
    """`count` pseudo-random bytes, the same for the same seed."""
    state, out = seed, bytearray()
    while len(out) < count:
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        out += state.to_bytes(8, "little")
    return bytes(out[:count])


def truncated_jpeg() -> bytes:
    """The first half of a JPEG: the header is intact, the scan data stops early."""
    data = noisy_jpeg()
    return data[: len(data) // 2]


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height RGB pixels, followed by a tiny IDAT (one row of
    compressed zeros) and IEND: 100 bytes that would need width*height*3 bytes to decode."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def polyglot() -> bytes:
    """A valid PNG with an HTML page after its IEND chunk (a browser that sniffs may run it)."""
    return png() + HTML


def jpeg_with_exif(orientation: int, *, gps: bool = True, size=(64, 40)) -> bytes:
    """A JPEG whose left half is red, with an EXIF orientation tag and (by default) a GPS position."""
    img = Image.new("RGB", size, (20, 20, 220))
    img.paste((220, 30, 30), (0, 0, size[0] // 2, size[1]))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    if gps:
        gps_ifd = exif.get_ifd(GPS_IFD)
        gps_ifd[1], gps_ifd[2] = "N", (52.0, 31.0, 12.0)
        gps_ifd[3], gps_ifd[4] = "E", (13.0, 24.0, 36.0)
    out = io.BytesIO()
    img.save(out, format="JPEG", exif=exif.tobytes(), quality=95)
    return out.getvalue()


# -- requests -----------------------------------------------------------------------------

def form_data(**overrides) -> dict:
    """What the new-job form posts when a person leaves the defaults, made tiny (48 px, 4 iterations)."""
    defaults = StyleConfig().to_dict()
    data = {name: "" if defaults[name] is None else str(defaults[name]) for name in PARAM_FIELDS}
    data["normalize_content"] = "on"
    data["content_layer"] = "relu4_2"
    data.update({f"layer_{layer}": str(weight) for layer, weight in defaults["style_layers"].items()})
    data.update(size="48", scales="1", iterations="4", seed="7")
    data.update(overrides)
    return data


def multipart(fields: Mapping[str, str | Iterable[str]], files: Mapping[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """(body, content type) of a multipart form. Django's test client sends only the last part of
    a file's name; this keeps it as written, as a hostile client would."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        for item in [value] if isinstance(value, str) else value:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{item}\r\n'.encode())
    for name, (filename, data) in files.items():
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n")
        parts.append(head.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# -- what is on disk ------------------------------------------------------------------------

def files_under(root: Path) -> set[str]:
    """Every file below root, as paths relative to it."""
    return {str(path.relative_to(root)) for path in Path(root).rglob("*") if path.is_file()}
