"""The CLI's run loop: a tqdm bar with losses and ETA, periodic snapshots, visualisations."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from PIL import Image
from tqdm import tqdm

from .config import StyleConfig
from .engine import run
from .result import Progress, Result


def run_with_progress(content: Image.Image, styles: Sequence[Image.Image], config: StyleConfig, *,
                      init_image: Image.Image | None = None, quiet: bool = False,
                      save_every: Sequence[str] | None = None) -> Result:
    every, folder = (int(save_every[0]), Path(save_every[1])) if save_every else (0, None)
    if folder:
        folder.mkdir(parents=True, exist_ok=True)
    bar = None if quiet else tqdm(total=1, unit="it", dynamic_ncols=True)

    def on_progress(p: Progress) -> None:
        if bar is not None:
            bar.total = p.total_steps
            bar.n = p.step
            bar.set_description(f"scale {p.scale + 1}/{p.num_scales} {p.size[0]}x{p.size[1]}")
            style = sum(v for k, v in p.losses.items() if k.startswith("style:"))
            content = sum(v for k, v in p.losses.items() if k.startswith("content:"))
            bar.set_postfix_str(f"loss {p.loss:.4g} (content {content:.3g}, style {style:.3g}) "
                                f"eta {p.eta:.0f}s", refresh=True)
        if every and p.step % every == 0:
            p.preview().save(folder / f"step_{p.step:05d}.png")

    try:
        return run(content, styles, config, on_progress=on_progress, init_image=init_image)
    finally:
        if bar is not None:
            bar.close()


def save_visualizations(folder: Path, content: Image.Image, style: Image.Image, result: Result) -> list[Path]:
    from .visualize import all_visualizations

    folder.mkdir(parents=True, exist_ok=True)
    c = result.config
    pictures = all_visualizations(content, style, result.image, result.history, layers=tuple(
        n for n, w in c.style_layers.items() if w), pooling=c.pooling, weights=c.weights, device=result.device)
    written = []
    for name, picture in pictures.items():
        path = folder / f"{name}.png"
        picture.save(path)
        written.append(path)
    return written
