"""Several settings on the six classic pairs in one process: which defaults meet the look's targets.

    python3 bench/look_sweep.py bench/sweeps/defaults.json --json $OUT/sweep.json   # GPU machine: minutes
    .venv/bin/python bench/look_sweep.py bench/sweeps/defaults.json --only baseline  # 2 cores: ~8 min each
    .venv/bin/python bench/look_sweep.py bench/sweeps/defaults.json --smoke           # checks the script (CI)

The settings file maps a name to StyleConfig options over a preset:
{"baseline": {}, "beta 5": {"style_weight": 5}, "quality": {"preset": "quality"}}.
For each setting and pair: the four look figures (stylize/quality.py) as ratios to the classic's,
and whether all four meet bench/look.py's targets; per setting, how many pairs meet them and the
worst ratio of each figure. The report is rewritten after every setting, so a run stopped at a
machine's time limit keeps what it measured.

On a GPU the sweep runs strict fp32 (no TF32) unless --tf32: the defaults are chosen for every
device, and strict fp32 keeps a GPU's figures those of the same run on a CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # look.py beside this file
import look  # noqa: E402

import stylize  # noqa: E402  (look.py put the repository on the path)
from stylize import devices, engine, quality  # noqa: E402


def strict_fp32() -> None:
    """The engine turns TF32 on for every CUDA run; turn it off again after it does."""
    turn_on = devices.setup_device

    def setup_without_tf32(device: torch.device) -> None:
        turn_on(device)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    devices.setup_device = setup_without_tf32
    engine.setup_device = setup_without_tf32


def sweep_setting(options: dict, pairs, classic_looks: dict, seed: int, shrink: dict) -> dict:
    options = dict(options)
    config = stylize.StyleConfig.preset(options.pop("preset", "balanced"), seed=seed, **{**options, **shrink})
    rows = {}
    for pair in pairs:
        content, style, classic = look.pair_images(pair)
        started = time.perf_counter()
        ours = stylize.run(content, [style], config).image
        seconds = time.perf_counter() - started
        mine, theirs = quality.measure(ours, content, style), classic_looks[pair]
        ratios = {k: round(getattr(mine, k) / max(getattr(theirs, k), 1e-30), 4) for k in look.TARGETS}
        rows[pair] = {"ours": mine.as_dict(), "ratio": ratios, "seconds": round(seconds, 2),
                      "meets_targets": all(ratios[k] <= look.TARGETS[k] for k in look.TARGETS)}
    worst = {k: max(row["ratio"][k] for row in rows.values()) for k in look.TARGETS}
    return {"config": config.to_dict(), "pairs": rows, "worst_ratio": worst,
            "pairs_meeting_targets": sum(row["meets_targets"] for row in rows.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("settings", type=Path, help="JSON: {name: {option: value, ...}, ...}")
    parser.add_argument("--only", nargs="*", help="names of the settings to run (default: all)")
    parser.add_argument("--pairs", nargs="*", default=list(look.PAIRS), choices=look.PAIRS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tf32", action="store_true", help="leave TF32 on (GPU)")
    parser.add_argument("--smoke", action="store_true", help="one pair at 64 px, 2+2 iterations")
    parser.add_argument("--json", type=Path, default=look.OUT / "look_sweep.json")
    args = parser.parse_args()
    settings = json.loads(args.settings.read_text())
    names = args.only or list(settings)
    shrink = {}
    if args.smoke:
        shrink, args.pairs, names = {"size": 64, "scales": 2, "coarse_iterations": 2, "iterations": 2}, \
            args.pairs[:1], names[:2]
    if not args.tf32:
        strict_fp32()
    classic_looks = {}
    for pair in args.pairs:
        content, style, classic = look.pair_images(pair)
        classic_looks[pair] = quality.measure(classic, content, style)
    report = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
              "torch": torch.__version__, "tf32": args.tf32, "seed": args.seed,
              "classic": {pair: look_.as_dict() for pair, look_ in classic_looks.items()}, "settings": {}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    for name in names:
        result = sweep_setting(settings[name], args.pairs, classic_looks, args.seed, shrink)
        report["settings"][name] = result
        args.json.write_text(json.dumps(report, indent=2))
        seconds = sum(row["seconds"] for row in result["pairs"].values())
        print(f"{name:28} {result['pairs_meeting_targets']}/{len(args.pairs)} pairs  worst "
              + "  ".join(f"{k} {v:.2f}" for k, v in result["worst_ratio"].items()) + f"  ({seconds:.0f} s)",
              flush=True)
    print(f"report: {args.json}")


if __name__ == "__main__":
    main()
