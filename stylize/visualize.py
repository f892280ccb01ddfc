"""Pictures of what the network "sees": feature-map grids, Gram heatmaps, top patches, loss curves.

Every public function returns a PIL RGB image so the web app can store it as a
file. Only torch, torchvision, numpy and Pillow are used: labels come from
Pillow's built-in font, colour maps from a small table below (no matplotlib).
Images in are PIL images of any mode; they are resized to a long side of `size`
before the forward pass so that pictures of one job are comparable.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

from .images import fit_long_side, resize, to_image, to_tensor
from .losses import gram
from .vgg import check_layer, features_for, layer_channels, receptive_field

log = logging.getLogger(__name__)

# Layout constants (pixels); the tests derive the expected image sizes from them.
_PAD = 2  # between tiles of a grid
_GAP = 12  # between blocks
_LINE_H = 16  # one line of label text
_TILE = 96  # long side of a feature-map tile
_HEAT = 192  # side of a Gram heatmap
_BAR_W = 14  # colour bar width
_TICK_W = 72  # room for the colour bar's tick labels
_ROW_LABEL_W = 80  # room for the Gram rows' layer names
_BG, _FG, _GREY = (255, 255, 255), (30, 30, 30), (128, 128, 128)

# Viridis sampled at 8 evenly spaced points; interpolated to 256 entries below.
_VIRIDIS_ANCHORS = ("#440154", "#46327e", "#365c8d", "#277f8e", "#1fa187", "#4ac16d", "#a0da39", "#fde725")
# Matplotlib's tab10: distinct hues for the loss curves.
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf")


def _hex(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


@functools.cache
def _lut() -> torch.Tensor:
    """(256, 3) float 0..1: the viridis-like colour map."""
    anchors = np.array([_hex(c) for c in _VIRIDIS_ANCHORS], dtype=np.float32) / 255.0  # (8, 3)
    where, at = np.linspace(0, 1, len(anchors)), np.linspace(0, 1, 256)
    table = np.stack([np.interp(at, where, anchors[:, i]) for i in range(3)], axis=1)  # (256, 3)
    return torch.from_numpy(table.astype(np.float32))


def _colorize(values: torch.Tensor) -> torch.Tensor:
    """values (N, h, w) in 0..1 -> (N, 3, h, w) through the colour map."""
    index = (values.clamp(0, 1) * 255).round().long()
    return _lut()[index].permute(0, 3, 1, 2)


@functools.cache
def _font(size: int = 12) -> ImageFont.ImageFont:
    try:  # Pillow >= 10.1 scales its built-in font
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def _text_width(text: str, font) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(right - left)


def _fit(img: Image.Image, size: int) -> Image.Image:
    """RGB copy with long side `size`, aspect kept (alpha dropped: the net sees RGB)."""
    img = img.convert("RGB")
    target = fit_long_side(img.width, img.height, size)
    return img if target == img.size else resize(img, target)


@torch.no_grad()
def _forward(net, images: Mapping[str, Image.Image], layers: Sequence[str], size: int):
    """-> ({name: resized RGB image}, {name: {layer: activation (C, h, w) float32 on CPU}})."""
    if not images:
        raise ValueError("no images to visualise")
    fitted = {name: _fit(img, size) for name, img in images.items()}
    acts, device = {}, next(net.parameters()).device
    for name, img in fitted.items():
        out = net(to_tensor(img).to(device), list(dict.fromkeys(layers)))
        acts[name] = {layer: a[0].float().cpu() for layer, a in out.items()}
    return fitted, acts


def _grid(tiles: torch.Tensor, ncol: int) -> tuple[Image.Image, list[tuple[int, int]]]:
    """tiles (B, 3, h, w) -> (grid image, top-left corner of each tile)."""
    if tiles.shape[0] == 1:  # make_grid returns a lone tile unpadded; keep one layout rule
        grid = F.pad(tiles[0], (_PAD,) * 4, value=1.0)
    else:
        grid = make_grid(tiles, nrow=ncol, padding=_PAD, pad_value=1.0)
    h, w = tiles.shape[-2:]
    corners = [(_PAD + (i % ncol) * (w + _PAD), _PAD + (i // ncol) * (h + _PAD)) for i in range(tiles.shape[0])]
    return to_image(grid), corners


def _label_height(lines: int) -> int:
    return lines * _LINE_H + 8


def _labelled(img: Image.Image, lines: Sequence[str]) -> Image.Image:
    """`img` with a label row above it (widened if the text is wider than the image)."""
    font = _font(12)
    width = max([img.width] + [_text_width(s, font) + 8 for s in lines])
    out = Image.new("RGB", (width, _label_height(len(lines)) + img.height), _BG)
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        draw.text((4, 4 + i * _LINE_H), line, fill=_FG, font=font)
    out.paste(img, ((width - img.width) // 2, _label_height(len(lines))))
    return out


def _hstack(blocks: Sequence[Image.Image]) -> Image.Image:
    width = sum(b.width for b in blocks) + _GAP * (len(blocks) - 1)
    out = Image.new("RGB", (width, max(b.height for b in blocks)), _BG)
    x = 0
    for block in blocks:
        out.paste(block, (x, 0))
        x += block.width + _GAP
    return out


def _tag(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str) -> None:
    """Small white-on-black label, readable on any colour."""
    font = _font(10)
    left, top, right, bottom = draw.textbbox((xy[0] + 2, xy[1] + 1), text, font=font)
    draw.rectangle((xy[0], xy[1], right + 2, bottom + 1), fill=(0, 0, 0))
    draw.text((xy[0] + 2, xy[1] + 1), text, fill=(255, 255, 255), font=font)


# ---------------------------------------------------------------- feature maps

def feature_maps(net, images: Mapping[str, Image.Image], layer: str, count: int = 16,
                 size: int = 256) -> Image.Image:
    """Grids of the `count` most active channels of `layer`, one labelled grid per named image."""
    _, acts = _forward(net, images, [check_layer(layer)], size)
    return _render_feature_maps({name: a[layer] for name, a in acts.items()}, layer, count)


def _most_active(activation: torch.Tensor, count: int) -> torch.Tensor:
    """activation (C, h, w) -> indices (count,) of the channels with the highest mean, best first."""
    return activation.mean(dim=(1, 2)).topk(count).indices


def _render_feature_maps(acts: Mapping[str, torch.Tensor], layer: str, count: int) -> Image.Image:
    first = next(iter(acts.values()))  # (C, h, w)
    count = max(1, min(count, first.shape[0]))
    # Ranked on the first image only, so every grid shows the same channels in the same order.
    channels = _most_active(first, count)  # (count,)
    chosen = {name: a[channels] for name, a in acts.items()}  # (count, h, w) each
    # One range per channel over all images: equal brightness means equal activation.
    low = torch.stack([a.amin(dim=(1, 2)) for a in chosen.values()]).amin(0).clamp(max=0)  # (count,)
    high = torch.stack([a.amax(dim=(1, 2)) for a in chosen.values()]).amax(0)
    span = (high - low).clamp(min=1e-8)[:, None, None]
    ncol = math.ceil(math.sqrt(count))
    blocks = []
    for name, a in chosen.items():
        h, w = a.shape[-2:]
        scale = _TILE / max(h, w)
        tile_hw = (max(1, round(h * scale)), max(1, round(w * scale)))
        mode = "nearest" if scale >= 1 else "area"  # nearest keeps coarse cells visible as cells
        maps = F.interpolate(((a - low[:, None, None]) / span)[:, None], size=tile_hw, mode=mode)[:, 0]
        grid, corners = _grid(_colorize(maps), ncol)
        draw = ImageDraw.Draw(grid)
        for channel, corner in zip(channels.tolist(), corners):
            _tag(draw, corner, str(channel))
        blocks.append(_labelled(grid, [f"{name} · {layer}"]))
    log.debug("feature maps of %s: channels %s", layer, channels.tolist())
    return _hstack(blocks)


# ---------------------------------------------------------------- Gram heatmaps

def gram_heatmaps(net, style: Image.Image, result: Image.Image, layers: Sequence[str], size: int = 256,
                  channels: int = 64) -> Image.Image:
    """Per layer a row: style Gram, result Gram (top-left `channels` block), |difference|, colour bar."""
    _, acts = _forward(net, {"style": style, "result": result}, [check_layer(n) for n in layers], size)
    return _render_grams(acts["style"], acts["result"], layers, channels)


def _signed_log1p(x: torch.Tensor) -> torch.Tensor:
    # Grams span several decades; log1p keeps the small entries visible. Signed for conv layers.
    return x.sign() * x.abs().log1p()


def _render_grams(style: Mapping[str, torch.Tensor], result: Mapping[str, torch.Tensor], layers: Sequence[str],
                  channels: int) -> Image.Image:
    font, header_h, cell = _font(12), _label_height(1), _HEAT + _GAP
    width = _ROW_LABEL_W + 3 * cell + _BAR_W + _TICK_W
    out = Image.new("RGB", (width, header_h + len(layers) * cell), _BG)
    draw = ImageDraw.Draw(out)
    for col, title in enumerate(("style Gram", "result Gram", "|difference|")):
        draw.text((_ROW_LABEL_W + col * cell + 4, 4), title, fill=_FG, font=font)
    for row, layer in enumerate(layers):
        n = max(1, min(channels, style[layer].shape[0]))
        g_style, g_result = gram(style[layer][None, :n]), gram(result[layer][None, :n])  # (n, n) each
        mats = torch.stack([g_style, g_result, (g_style - g_result).abs()])  # (3, n, n)
        scaled = _signed_log1p(mats)
        lo, hi = scaled.min(), scaled.max()  # one scale for the whole row
        tiles = F.interpolate(((scaled - lo) / (hi - lo).clamp(min=1e-8))[:, None], size=(_HEAT, _HEAT),
                              mode="nearest")[:, 0]
        top = header_h + row * cell
        for col, tile in enumerate(_colorize(tiles)):
            out.paste(to_image(tile), (_ROW_LABEL_W + col * cell, top))
        draw.text((4, top + 4), layer, fill=_FG, font=font)
        draw.text((4, top + 4 + _LINE_H), f"{n}/{style[layer].shape[0]} ch", fill=_GREY, font=font)
        # Colour bar, max at the top; tick labels are raw Gram values.
        bar = torch.linspace(1, 0, _HEAT)[None, :, None].expand(1, _HEAT, _BAR_W)
        bar_x = _ROW_LABEL_W + 3 * cell
        out.paste(to_image(_colorize(bar)[0]), (bar_x, top))
        for y, value in ((top, mats.max()), (top + _HEAT - _LINE_H + 2, mats.min())):
            draw.text((bar_x + _BAR_W + 4, y), f"{value.item():.3g}", fill=_FG, font=_font(11))
    return out


# ---------------------------------------------------------------- top patches

def _check_unit(layer: str, unit) -> None:
    n = layer_channels(check_layer(layer))
    if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)) or not 0 <= unit < n:
        raise ValueError(f"unit {unit!r} does not exist in {layer}: it has {n} channels, units 0..{n - 1}")


def top_unit_windows(activation: torch.Tensor, layer: str, unit: int, k: int = 9):
    """activation (C, h, w) of `layer` -> [(score, (top, left, bottom, right))], best first.

    Greedy non-maximum suppression: a position is taken only if it is at least
    half a receptive field (in feature cells) from every one taken before, so
    the k windows show k places, not one spot k times. If the map is too small
    for k such places, the best suppressed positions fill up.
    """
    _check_unit(layer, unit)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    fmap = activation[unit].float()  # (h, w)
    width = fmap.shape[1]
    rf = receptive_field(layer)
    gap = max(1, math.ceil(rf.size / 2 / rf.stride))
    picked, spare = [], []
    for index in torch.argsort(fmap.flatten(), descending=True).tolist():
        y, x = divmod(index, width)
        if all(max(abs(y - py), abs(x - px)) >= gap for py, px in picked):
            picked.append((y, x))
            if len(picked) == k:
                break
        elif len(spare) < k:
            spare.append((y, x))
    picked += spare[: max(0, k - len(picked))]
    found = [(fmap[y, x].item(), rf.window(y, x)) for y, x in picked]
    return sorted(found, key=lambda item: -item[0])


def _crop(img: Image.Image, window: tuple[int, int, int, int]) -> Image.Image:
    """The window, grey where it reaches past the image (the net saw zero padding there)."""
    top, left, bottom, right = window
    out = Image.new("RGB", (right - left, bottom - top), _GREY)
    box = (max(left, 0), max(top, 0), min(right, img.width), min(bottom, img.height))
    if box[0] < box[2] and box[1] < box[3]:
        out.paste(img.crop(box), (box[0] - left, box[1] - top))
    return out


def top_patches(net, images: Mapping[str, Image.Image], layer: str, unit: int, k: int = 9, size: int = 256,
                patch_px: int = 64) -> Image.Image:
    """The input patches that excite `unit` of `layer` most, a labelled grid per named image."""
    _check_unit(layer, unit)
    fitted, acts = _forward(net, images, [layer], size)
    return _render_patches(fitted, {name: a[layer] for name, a in acts.items()}, layer, unit, k, patch_px)


def _render_patches(fitted, acts, layer, unit, k, patch_px) -> Image.Image:
    blocks = []
    for name, img in fitted.items():
        windows = top_unit_windows(acts[name], layer, unit, k)
        patches = []
        for _, window in windows:
            crop = _crop(img, window)
            upscale = crop.width < patch_px  # nearest when enlarging: a 3-px window stays 3 honest pixels
            resample = Image.Resampling.NEAREST if upscale else Image.Resampling.LANCZOS
            patches.append(to_tensor(crop.resize((patch_px, patch_px), resample))[0])
        grid, _ = _grid(torch.stack(patches), math.ceil(math.sqrt(k)))
        best = windows[0][0] if windows else float("nan")
        blocks.append(_labelled(grid, [name, f"{layer} unit {unit}, max {best:.1f}"]))
    return _hstack(blocks)


# ---------------------------------------------------------------- loss curves

def _nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for factor in (1, 2, 5, 10):
        if (hi - lo) / (step * factor) <= n:
            step *= factor
            break
    return [i * step for i in range(math.ceil(lo / step), math.floor(hi / step) + 1)]


def _no_data(width: int, height: int, text: str = "no data yet") -> Image.Image:
    out = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(out)
    draw.rectangle((0, 0, width - 1, height - 1), outline=_GREY)
    font = _font(24)
    draw.text(((width - _text_width(text, font)) // 2, height // 2 - 12), text, fill=_GREY, font=font)
    return out


def _series(history: Sequence[Mapping], log_scale: bool) -> dict[str, list[tuple[float, float, object]]]:
    """{name: [(step, value, scale)]}: "total" first, then every term in order of first appearance."""
    series: dict[str, list[tuple[float, float, object]]] = {"total": []}
    for i, entry in enumerate(history):
        step, scale = float(entry.get("step", i)), entry.get("scale")
        values = [("total", entry.get("loss"))] + list((entry.get("losses") or {}).items())
        for name, value in values:
            if value is None or not math.isfinite(float(value)) or (log_scale and float(value) <= 0):
                continue  # log10 of 0 or less does not exist
            series.setdefault(name, []).append((step, float(value), scale))
    return {name: points for name, points in series.items() if points}


def loss_curves(history: Sequence[Mapping], width: int = 800, height: int = 450,
                log_scale: bool = True) -> Image.Image:
    """Total loss and each term against step; dashed lines where the scale changes."""
    series = _series(history, log_scale)
    if not series:
        return _no_data(width, height)
    left, right, top, bottom = 70, width - 170, 30, height - 40  # plot area; legend on the right
    steps = [s for points in series.values() for s, _, _ in points]
    x_lo, x_hi = min(steps), max(steps)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    ymap = math.log10 if log_scale else (lambda v: v)
    ys = [ymap(v) for points in series.values() for _, v, _ in points]
    y_lo, y_hi = min(ys), max(ys)
    if log_scale:
        y_lo, y_hi = math.floor(y_lo), max(math.ceil(y_hi), math.floor(y_lo) + 1)
    elif y_hi == y_lo:
        y_lo, y_hi = y_lo - 1, y_hi + 1

    def xp(step: float) -> float:
        return left + (step - x_lo) / (x_hi - x_lo) * (right - left)

    def yp_of(value: float) -> float:
        return bottom - (ymap(value) - y_lo) / (y_hi - y_lo) * (bottom - top)

    out = Image.new("RGB", (width, height), _BG)
    draw, font = ImageDraw.Draw(out), _font(11)
    draw.text((left, 8), "loss (log scale)" if log_scale else "loss", fill=_FG, font=_font(13))
    draw.text(((left + right) // 2 - 12, bottom + 22), "step", fill=_FG, font=font)
    for x in _nice_ticks(x_lo, x_hi):
        draw.line((xp(x), bottom, xp(x), bottom + 4), fill=_FG)
        draw.text((xp(x) - _text_width(f"{x:g}", font) / 2, bottom + 6), f"{x:g}", fill=_FG, font=font)
    decades = range(int(y_lo), int(y_hi) + 1, max(1, math.ceil((y_hi - y_lo) / 6)))
    if log_scale:
        ticks = [(10.0 ** d, f"1e{d}") for d in decades]
    else:
        ticks = [(y, f"{y:g}") for y in _nice_ticks(y_lo, y_hi)]
    for y, label in ticks:
        yp = yp_of(y)
        draw.line((left, yp, right, yp), fill=(232, 232, 232))
        draw.text((left - 6 - _text_width(label, font), yp - 7), label, fill=_FG, font=font)
    # Scale changes: a dashed line at the first step of each new scale.
    previous = None
    for entry in history:
        scale = entry.get("scale")
        if previous is not None and scale != previous and "step" in entry:
            x = xp(float(entry["step"]))
            for y in range(top, bottom, 8):
                draw.line((x, y, x, min(y + 4, bottom)), fill=_GREY)
            draw.text((x + 3, top + 2), f"scale {scale}", fill=_GREY, font=font)
        previous = scale
    for i, (name, points) in enumerate(series.items()):
        colour = _FG if name == "total" else _hex(_PALETTE[(i - 1) % len(_PALETTE)])
        # One polyline per scale: the jump where a new scale starts is not a trend.
        for _, run in itertools.groupby(points, key=lambda p: p[2]):
            xy = [(xp(s), yp_of(v)) for s, v, _ in run]
            if len(xy) > 1:
                draw.line(xy, fill=colour, width=3 if name == "total" else 2, joint="curve")
            else:
                draw.ellipse((xy[0][0] - 3, xy[0][1] - 3, xy[0][0] + 3, xy[0][1] + 3), fill=colour)
        legend_y = top + i * _LINE_H
        draw.line((right + 16, legend_y + 7, right + 36, legend_y + 7), fill=colour, width=3)
        draw.text((right + 42, legend_y), name, fill=_FG, font=font)
    draw.rectangle((left, top, right, bottom), outline=_FG)
    return out


# ---------------------------------------------------------------- everything for one job

def all_visualizations(content: Image.Image, style: Image.Image, result: Image.Image, history: Sequence[Mapping],
                       layers: Sequence[str] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
                       patch_layer: str = "relu3_1", unit: int | None = None, pooling: str = "max",
                       weights: str = "original", device: str = "cpu", size: int = 256) -> dict[str, Image.Image]:
    """{"features_<layer>": ..., "gram": ..., "patches": ..., "loss": ...} for one finished job.

    One forward pass per image serves every picture. `unit` None picks the
    result's most active unit of `patch_layer`.
    """
    wanted = [check_layer(n) for n in (*layers, patch_layer)]
    if unit is not None:
        _check_unit(patch_layer, unit)  # before the expensive part
    net = features_for(wanted, pooling=pooling, source=weights, device=device)
    fitted, acts = _forward(net, {"content": content, "style": style, "result": result}, wanted, size)
    if unit is None:
        unit = int(_most_active(acts["result"][patch_layer], 1)[0])
    log.info("visualising layers %s, patches of %s unit %d", list(layers), patch_layer, unit)
    out = {f"features_{layer}": _render_feature_maps({n: a[layer] for n, a in acts.items()}, layer, 16)
           for layer in layers}
    out["gram"] = _render_grams(acts["style"], acts["result"], layers, 64)
    patch_acts = {n: a[patch_layer] for n, a in acts.items()}
    out["patches"] = _render_patches(fitted, patch_acts, patch_layer, unit, 9, 64)
    out["loss"] = loss_curves(history)
    return out
