"""python -m stylize CONTENT STYLE [STYLE ...] -o OUT: the engine from the command line.

Every StyleConfig option is a flag (generated from the dataclass, so the two never
drift apart); a flag left out takes the preset's value.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from . import __version__, images
from .cli_run import run_with_progress, save_visualizations
from .config import PRESETS, StyleConfig
from .errors import ConfigError, DeviceMemoryError, ImageError, StylizeError, WeightsError
from .vgg import describe_layers

log = logging.getLogger("stylize")

EXIT_OK, EXIT_USAGE, EXIT_IMAGE, EXIT_WEIGHTS, EXIT_MEMORY, EXIT_INTERRUPTED = 0, 2, 3, 4, 5, 130


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _layer_weights(text: str) -> tuple[str, float]:
    """'relu1_1=0.5' -> ('relu1_1', 0.5); a bare name weighs 1."""
    name, _, weight = text.partition("=")
    try:
        return name, float(weight) if weight else 1.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not LAYER or LAYER=WEIGHT") from None


def _config_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("style options (defaults: the 'balanced' preset)")
    for f in fields(StyleConfig):
        flag, meta = "--" + f.name.replace("_", "-"), f.metadata
        default = f.default if f.default is not MISSING else f.default_factory()
        help_text = f"{meta['help']} (default: {_show(default)})"
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        kw = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if meta.get("choices"):
            kw["choices"] = meta["choices"]
        if kind.startswith("Mapping"):
            group.add_argument(flag, nargs="+", type=_layer_weights, metavar="LAYER[=W]", **kw)
        elif kind.startswith("tuple"):
            group.add_argument(flag, nargs="+", type=float, metavar="W", **kw)
        elif kind == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        else:
            group.add_argument(flag, type={"int": int, "int | None": int, "float": float}.get(kind, str), **kw)


def _show(value) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={v:g}" for k, v in value.items())
    return "none" if value is None or value == () else str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stylize", description="Neural style transfer (Gatys et al.) with VGG19.")
    parser.add_argument("content", nargs="?", help="content image (JPEG, PNG or WebP)")
    parser.add_argument("styles", nargs="*", metavar="style", help="one or more style images")
    parser.add_argument("-o", "--output", help="result PNG path")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="balanced")
    parser.add_argument("--init-image", help="starting image for --init image")
    parser.add_argument("--list-layers", action="store_true", help="print VGG19's layer names and exit")
    parser.add_argument("--save-every", nargs=2, metavar=("N", "DIR"),
                        help="save the image being optimised every N iterations into DIR")
    parser.add_argument("--visualize", metavar="DIR",
                        help="write feature maps, Gram heatmaps, top patches and loss curves into DIR")
    parser.add_argument("--max-pixels", type=_positive_int, default=images.DEFAULT_MAX_PIXELS,
                        help="refuse input images with more pixels than this")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--version", action="version", version=f"stylize {__version__}")
    _config_flags(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.list_layers:
        for name, channels in describe_layers().items():
            print(f"{name:8} {channels:4d} channels")
        return EXIT_OK
    if not args.content or not args.styles or not args.output:
        parser.error("give a content image, at least one style image and -o OUTPUT.png")
    if args.save_every:
        try:
            args.save_every[0] = _positive_int(args.save_every[0])
        except argparse.ArgumentTypeError as exc:
            parser.error(f"--save-every N: {exc}")
    try:
        return _stylize(args)
    except ConfigError as exc:
        return _fail(f"bad option {exc.field}: {exc.reason}", EXIT_USAGE)
    except ImageError as exc:
        return _fail(str(exc), EXIT_IMAGE)
    except WeightsError as exc:
        return _fail(str(exc), EXIT_WEIGHTS)
    except DeviceMemoryError as exc:
        return _fail(str(exc), EXIT_MEMORY)
    except StylizeError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _stylize(args: argparse.Namespace) -> int:
    overrides = {f.name: getattr(args, f.name) for f in fields(StyleConfig) if hasattr(args, f.name)}
    for key in ("content_layers", "style_layers"):
        if key in overrides:
            overrides[key] = dict(overrides[key])
    if "style_blend" in overrides:
        overrides["style_blend"] = tuple(overrides["style_blend"])
    config = StyleConfig.preset(args.preset, **overrides)
    load = lambda path: images.load_image(path, max_pixels=args.max_pixels)  # noqa: E731
    content, styles = load(args.content), [load(p) for p in args.styles]
    init_image = load(args.init_image) if args.init_image else None
    result = run_with_progress(content, styles, config, init_image=init_image, quiet=args.quiet,
                               save_every=args.save_every)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    result.save(output)
    print(f"saved {output} ({result.image.width}x{result.image.height}, seed {result.config.seed}, "
          f"{result.elapsed:.1f} s on {result.device})")
    if args.visualize:
        written = save_visualizations(Path(args.visualize), content, styles[0], result)
        print(f"wrote {len(written)} visualisations to {args.visualize}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
