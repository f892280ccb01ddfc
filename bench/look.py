"""The look of our results against the classic neural-style outputs, on the six pairs it has.

    .venv/bin/python bench/look.py                      # balanced preset, all six pairs (~8 min, 2 cores)
    .venv/bin/python bench/look.py --preset fast        # another preset
    .venv/bin/python bench/look.py --set style_weight=3 --set init=content --pairs tubingen_starry
    .venv/bin/python bench/look.py --smoke              # tiny sizes: checks the script (CI)

For each pair: content cost, match(512), match(256) and palette (stylize/quality.py) of
ours and of the classic, the wall time of ours (in this process, model loaded), and whether
ours meets the targets (content ≤ classic, match(512) ≤ classic, match(256) ≤ 1.1×, palette
≤ 1.25×). Writes bench/out/look.json and the contact sheet bench/out/look.png (content,
style, classic, ours for each pair) and each result at full size (bench/out/look_<pair>.png).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import stylize  # noqa: E402
from stylize import quality  # noqa: E402

IMAGES = Path(os.environ.get("STYLIZE_IMAGES", ROOT.parent / "shared" / "images"))
OUT = ROOT / "bench" / "out"
STYLES = {"starry": "starry_night.jpg", "scream": "the_scream.jpg", "shipwreck": "shipwreck.jpg",
          "matisse": "woman-with-hat-matisse.jpg"}
PAIRS = ("tubingen_starry", "tubingen_scream", "tubingen_shipwreck",
         "golden_gate_starry", "golden_gate_scream", "golden_gate_matisse")
TARGETS = {"content": 1.0, "match_512": 1.0, "match_256": 1.1, "palette": 1.25}  # × the classic's


def pair_images(pair: str) -> tuple[Image.Image, Image.Image, Image.Image]:
    content_name, style_key = pair.rsplit("_", 1)
    content_path = next((IMAGES / "content").glob(f"{content_name}.*"))
    return (stylize.load_image(content_path), stylize.load_image(IMAGES / "style" / STYLES[style_key]),
            Image.open(IMAGES / "reference" / f"{pair}.png").convert("RGB"))


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def contact_sheet(rows: list[list[Image.Image]], labels: list[str], height: int = 200) -> Image.Image:
    columns = ("content", "style", "classic", "ours")
    scaled = [[img.resize((round(img.width * height / img.height), height), Image.Resampling.LANCZOS)
               for img in row] for row in rows]
    widths = [max(row[i].width for row in scaled) for i in range(len(columns))]
    sheet = Image.new("RGB", (sum(widths) + 8 * len(columns), len(rows) * (height + 24) + 20), "white")
    draw = ImageDraw.Draw(sheet)
    x = 0
    for i, name in enumerate(columns):
        draw.text((x + 4, 4), name, fill="black")
        x += widths[i] + 8
    for r, (row, label) in enumerate(zip(scaled, labels)):
        y, x = 20 + r * (height + 24), 0
        draw.text((4, y), label, fill="black")
        for i, img in enumerate(row):
            sheet.paste(img, (x, y + 16))
            x += widths[i] + 8
    return sheet


def markdown_table(report: dict) -> str:
    """The README's table: each figure as ours / the classic's, ours in bold where it meets its target."""
    lines = ["| pair | content cost | match(512) | match(256) | palette | seconds |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for pair, row in report["pairs"].items():
        cells = []
        for key, target in TARGETS.items():
            ours, classic = row["ours"][key], row["classic"][key]
            text = f"{ours:.3g}" if key == "content" else f"{ours:.4f}"
            text = f"**{text}**" if row["ratio"][key] <= target else text
            cells.append(f"{text} / {classic:.3g}" if key == "content" else f"{text} / {classic:.4f}")
        name = pair.replace("golden_gate", "golden gate").replace("_", " × ")
        lines.append(f"| {name} | "
                     + " | ".join(cells) + f" | {row['seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                        help="a StyleConfig option over the preset (JSON value)")
    parser.add_argument("--pairs", nargs="*", default=list(PAIRS), choices=PAIRS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--name", default="look", help="file name of the JSON and contact sheet")
    parser.add_argument("--smoke", action="store_true", help="one pair at 64 px, 2+2 iterations")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    overrides = {key: parse_value(value) for key, value in overrides.items()}
    if args.smoke:
        overrides.update(size=64, scales=2, coarse_iterations=2, iterations=2)
        args.pairs = args.pairs[:1]
    config = stylize.StyleConfig.preset(args.preset, seed=args.seed, **overrides)
    OUT.mkdir(parents=True, exist_ok=True)

    report, rows = {"preset": args.preset, "overrides": overrides, "pairs": {}}, []
    for pair in args.pairs:
        content, style, classic = pair_images(pair)
        started = time.perf_counter()
        ours = stylize.run(content, [style], config).image
        seconds = time.perf_counter() - started
        if args.smoke:
            classic = classic.resize(ours.size, Image.Resampling.LANCZOS)
        mine, theirs = quality.measure(ours, content, style), quality.measure(classic, content, style)
        ratios = {k: getattr(mine, k) / max(getattr(theirs, k), 1e-30) for k in TARGETS}
        met = all(ratios[k] <= TARGETS[k] for k in TARGETS)
        report["pairs"][pair] = {"ours": mine.as_dict(), "classic": theirs.as_dict(), "ratio": ratios,
                                 "seconds": seconds, "meets_targets": met}
        rows.append([content, style, classic, ours])
        ours.save(OUT / f"{args.name}_{pair}.png")  # full size: the contact sheet is too small to judge detail
        print(f"{pair:20} {seconds:5.0f} s  " + "  ".join(
            f"{k} {getattr(mine, k):.4g}/{getattr(theirs, k):.4g} ({ratios[k]:.2f})" for k in TARGETS)
            + ("  ok" if met else "  MISSED"), flush=True)
    (OUT / f"{args.name}.json").write_text(json.dumps(report, indent=2))
    contact_sheet(rows, list(args.pairs)).save(OUT / f"{args.name}.png")
    print(markdown_table(report))
    print(f"{sum(p['meets_targets'] for p in report['pairs'].values())}/{len(args.pairs)} pairs meet the "
          f"targets; {OUT / (args.name + '.json')}, {OUT / (args.name + '.png')}")


if __name__ == "__main__":
    main()
